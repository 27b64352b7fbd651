"""Appends to a journal until killed, printing what it was told is committed (the kill test's victim).

usage: python journal_writer.py DB_PATH ROUND

Each line on stdout is printed only after the write returned:
  "<seq> <n>"                  a plain append of {"round", "n", "note"}
  "tx <seq1> <seq2> <n>"       a transaction: two appends and store row n in table `handovers`
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.journal import Journal  # noqa: E402


def main() -> None:
    path, round_ = sys.argv[1], int(sys.argv[2])
    journal = Journal(path)
    n = 0
    while True:
        n += 1
        if n % 5:
            entry = journal.append("finger_attempt", {"round": round_, "n": n, "note": "押运员 指纹验证成功"},
                                   task_id=f"T{round_}")
            print(entry.seq, n, flush=True)
        else:
            with journal.transaction():
                first = journal.append("box_read", {"round": round_, "n": n}, task_id=f"T{round_}")
                journal.db.execute("CREATE TABLE IF NOT EXISTS handovers (round INTEGER, n INTEGER, first_seq INTEGER)")
                journal.db.execute("INSERT INTO handovers (round, n, first_seq) VALUES (?, ?, ?)",
                                   (round_, n, first.seq))
                second = journal.append("confirmation", {"round": round_, "n": n}, task_id=f"T{round_}")
            print("tx", first.seq, second.seq, n, flush=True)


if __name__ == "__main__":
    main()
