"""Tasks: where a run's rows come from, and the one place a row becomes a prompt and a reference.

- `row`: `Row` (a kind — math, code, swe — with what its verifier needs) and `DataError`;
- `procedural`: generated tasks a tiny model can learn (the quickstart's, and `print_value`, a
  code task); `gym`: reasoning-gym generators;
- `files`: records of JSONL, JSON, Parquet, CSV, Arrow files and `save_to_disk` directories;
- `layouts`: relayrl's, verl's and TRL's row layouts and the field map; `code`: a code row's
  tests as the code verifier's spec; `swe`: task directories, SWE-bench-style instances
  converted into them, and a SWE row's prompt;
- `source`: `Tasks` (a config's rows, checked when a run starts; training stream, epochs,
  shuffling, held-out split); `render`: a row as the prompt an actor sees and the reference a
  verifier gets, the same in training and in `relayrl eval --config`.
"""

from relayrl.tasks.procedural import ALPHABET, GENERATORS, MATH_TASKS, corpus
from relayrl.tasks.render import Rendered, chat_wrap, render
from relayrl.tasks.row import KINDS, DataError, Row
from relayrl.tasks.source import HELD_OUT, Tasks, stream

__all__ = ["ALPHABET", "GENERATORS", "HELD_OUT", "KINDS", "MATH_TASKS", "DataError", "Rendered", "Row", "Tasks", "chat_wrap",
           "corpus", "render", "stream"]
