import pytest

from structures.stack import EmptyStack, Stack


class TestStack:
    def test_push_pop(self):
        s = Stack()
        s.push(1)
        s.push(2)
        assert s.pop() == 2 and len(s) == 1

    def test_peek_is_top(self):
        s = Stack()
        s.push(1)
        s.push(2)
        assert s.peek() == 2

    def test_empty_pop(self):
        with pytest.raises(EmptyStack):
            Stack().pop()
