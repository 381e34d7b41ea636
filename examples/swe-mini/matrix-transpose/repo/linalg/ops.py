"""Small matrix operations on lists of rows."""


def transpose(m):
    n = len(m)
    return [[m[j][i] for j in range(n)] for i in range(n)]


def identity(n):
    return [[1 if i == j else 0 for j in range(n)] for i in range(n)]
