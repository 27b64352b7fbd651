"""The journal on real SQLite files: durability under SIGKILL, tamper evidence, transactions, backups."""

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.journal import Journal, JournalError, verify_file
from agent.sync.uplink import stored_encoder
from protocol import messages
from protocol.chain import GENESIS_HASH, entry_hash

WRITER = Path(__file__).with_name("journal_writer.py")
NOTE = "押运员 指纹验证成功"  # what journal_writer.py puts in each plain entry


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


def fill(journal, count, task_id="T1"):
    return [journal.append("finger_attempt", {"n": n, "ok": n % 2 == 0}, task_id=task_id) for n in range(1, count + 1)]


def tamper(path, sql, params=()):
    """What someone with a shell and the sqlite3 tool would do: drop the guards, edit, commit."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("DROP TRIGGER journal_no_delete")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


# -- round trip ----------------------------------------------------------------------------


def test_entries_read_back_exactly_as_appended_after_reopening(tmp_path):
    path = tmp_path / "journal.db"
    j = Journal(path)
    first = j.append("arrival", {"plate": "京A·12345", "note": "运钞车到达网点", "rssi": -61.5}, task_id="D-001",
                     ts="2026-11-22T07:30:00.123Z")
    second = j.append("finger_attempt", {"person": "王伟", "result": "match"}, task_id="D-001")
    third = j.append("config_change", {"key": "voice.lang", "value": "en"})
    j.close()

    j = Journal(path)
    read = list(j.entries())
    assert read == [first, second, third]
    assert read[0].body == {"plate": "京A·12345", "note": "运钞车到达网点", "rssi": -61.5}
    assert read[0].ts == "2026-11-22T07:30:00.123Z"
    assert [e.seq for e in read] == [1, 2, 3]
    assert read[0].prev_hash == GENESIS_HASH and read[1].prev_hash == read[0].hash
    assert j.entries_for_task("D-001") == [first, second]
    assert j.head() == third and j.last_seq() == 3
    assert list(j.entries(after_seq=1, limit=1)) == [second]
    # Head office can re-check the chain from the published dicts alone.
    for entry in read:
        published = entry.to_dict()
        fields = {k: published[k] for k in ("seq", "ts", "kind", "task_id", "body", "prev_hash")}
        assert entry_hash(**fields) == published["hash"]
    assert j.verify().ok
    j.close()


def test_default_timestamp_is_utc_with_milliseconds(journal):
    entry = journal.append("arrival", {})
    assert len(entry.ts) == 24 and entry.ts.endswith("Z") and entry.ts[19] == "."


def test_entries_pages_through_large_journals_in_order(journal):
    fill(journal, 1203)
    assert [e.seq for e in journal.entries()] == list(range(1, 1204))
    assert [e.seq for e in journal.entries(after_seq=600, limit=700)] == list(range(601, 1204))
    assert journal.verify().checked == 1203


@pytest.mark.parametrize(
    ("kind", "body", "kwargs", "named"),
    [
        ("", {}, {}, "kind"),
        ("arrival", ["not", "a", "dict"], {}, "must be a dict"),
        ("arrival", {"when": object()}, {}, "not JSON-serialisable"),
        ("arrival", {"rssi": float("nan")}, {}, "not JSON-serialisable"),
        ("arrival", {}, {"ts": "2026-11-22 07:30"}, "ts"),
        ("arrival", {}, {"ts": "2026-13-22T07:30:00.000Z"}, "ts"),
        ("arrival", {}, {"task_id": 7}, "task_id"),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_changes_nothing(journal, kind, body, kwargs, named):
    journal.append("arrival", {"ok": True})
    with pytest.raises(JournalError, match=named):
        journal.append(kind, body, **kwargs)
    assert journal.last_seq() == 1
    assert journal.append("arrival", {}).seq == 2
    assert journal.verify().ok


def test_the_journal_refuses_updates_and_deletes_through_its_own_connection(journal):
    fill(journal, 3)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        journal.db.execute("UPDATE journal SET body = '{}' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        journal.db.execute("DELETE FROM journal WHERE seq = 3")
    assert journal.verify().ok and len(list(journal.entries())) == 3


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(JournalError, match="does not exist"):
        Journal(tmp_path / "nowhere" / "journal.db")


# -- transactions and subscribers ----------------------------------------------------------


def test_rolled_back_transaction_leaves_no_entry_and_the_chain_continues(journal):
    journal.append("arrival", {"n": 1})
    with pytest.raises(RuntimeError):
        with journal.transaction():
            journal.append("box_read", {"box": "B1"})
            journal.db.execute("CREATE TABLE IF NOT EXISTS boxes (tag TEXT, seq INTEGER)")
            journal.db.execute("INSERT INTO boxes (tag) VALUES ('B1')")
            raise RuntimeError("printer jammed")
    assert journal.last_seq() == 1
    tables = {r[0] for r in journal.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "boxes" not in tables or journal.db.execute("SELECT count(*) FROM boxes").fetchone()[0] == 0
    after = journal.append("box_read", {"box": "B2"})
    assert after.seq == 2 and after.prev_hash == journal.entries().__next__().hash
    assert journal.verify().ok


def test_transaction_commits_store_rows_and_entries_together(journal, tmp_path):
    with journal.transaction():
        a = journal.append("box_read", {"box": "B1"}, task_id="D-1")
        journal.db.execute("CREATE TABLE IF NOT EXISTS boxes (tag TEXT, seq INTEGER)")
        journal.db.execute("INSERT INTO boxes (tag, seq) VALUES (?, ?)", ("B1", a.seq))
        b = journal.append("box_read", {"box": "B2"}, task_id="D-1")
        # Not visible to anyone else before the block ends.
        outside = sqlite3.connect(tmp_path / "journal.db")
        assert outside.execute("SELECT count(*) FROM journal").fetchone()[0] == 0
        assert journal.last_seq() == 0 and list(journal.entries()) == []
    assert outside.execute("SELECT count(*) FROM journal").fetchone()[0] == 2
    assert outside.execute("SELECT tag, seq FROM boxes").fetchall() == [("B1", 1)]
    outside.close()
    assert [e.seq for e in journal.entries()] == [a.seq, b.seq] == [1, 2]


def test_inner_failure_rolls_back_only_the_inner_block(journal):
    with journal.transaction():
        journal.append("box_read", {"box": "B1"})
        with pytest.raises(ValueError):
            with journal.transaction():
                journal.append("box_read", {"box": "B-wrong"})
                raise ValueError("wrong box")
        journal.append("alarm", {"type": "wrong_box"})
    assert [e.body for e in journal.entries()] == [{"box": "B1"}, {"type": "wrong_box"}]
    assert journal.verify().ok


def test_subscribers_hear_only_committed_entries(journal, tmp_path):
    heard = []
    seen_by_others = []
    path = tmp_path / "journal.db"

    def on_entry(entry):
        heard.append(entry.seq)
        conn = sqlite3.connect(path)
        seen_by_others.append(conn.execute("SELECT 1 FROM journal WHERE seq = ?", (entry.seq,)).fetchone() is not None)
        conn.close()

    journal.subscribe(on_entry)
    journal.append("arrival", {})
    with journal.transaction():
        journal.append("finger_attempt", {})
        journal.append("finger_attempt", {})
        assert heard == [1]
    with pytest.raises(KeyError):
        with journal.transaction():
            journal.append("finger_attempt", {})
            raise KeyError("cancel")
    assert heard == [1, 2, 3]
    assert all(seen_by_others)


def test_a_failing_subscriber_does_not_break_append(journal, caplog):
    heard = []

    def broken(entry):
        raise RuntimeError("screen gone")

    journal.subscribe(broken)
    journal.subscribe(lambda e: heard.append(e.seq))
    entry = journal.append("arrival", {"secret": "身份证 110101199001011234"})
    assert entry.seq == 1 and heard == [1]
    assert "screen gone" in caplog.text and "110101199001011234" not in caplog.text


def test_appends_from_many_threads_form_one_unbroken_chain(journal):
    def station(name):
        for n in range(100):
            if n % 10 == 0:
                with journal.transaction():
                    journal.append("box_read", {"station": name, "n": n})
                    journal.append("box_read", {"station": name, "n": n, "second": True})
            else:
                journal.append("finger_attempt", {"station": name, "n": n})

    threads = [threading.Thread(target=station, args=(f"door-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = list(journal.entries())
    assert [e.seq for e in entries] == list(range(1, 441))
    assert journal.verify().ok
    # A transaction's two entries are never split by another thread's append.
    for first, second in zip(entries, entries[1:]):
        if first.body.get("n", 1) % 10 == 0 and "second" not in first.body:
            assert second.body == {**first.body, "second": True}


def test_cursors_persist_and_refuse_positions_past_the_head(tmp_path):
    path = tmp_path / "journal.db"
    j = Journal(path)
    fill(j, 5)
    assert j.get_cursor("sync") == 0
    j.set_cursor("sync", 3)
    with pytest.raises(JournalError, match="between 0 and 5"):
        j.set_cursor("sync", 6)
    j.close()
    j = Journal(path)
    assert j.get_cursor("sync") == 3
    j.close()


# -- power cut ------------------------------------------------------------------------------


def test_every_reported_append_survives_sigkill_50_times(tmp_path):
    path = tmp_path / "journal.db"
    rng = random.Random(20261122)
    reported = {}  # seq -> body the writer was told is committed
    reported_tx = {}  # store row n -> (first seq, second seq)
    total_reported = waited_for = 0
    for round_ in range(50):
        writer = subprocess.Popen([sys.executable, str(WRITER), str(path), str(round_)],
                                  stdout=subprocess.PIPE, text=True, encoding="utf-8")
        seen = ""
        if round_ % 10 == 0:
            time.sleep(rng.uniform(0, 0.3))  # sometimes while it is still opening the file
        else:
            # Wait until it has reported a few writes (a count, not a time: a slow disk writes
            # fewer per second), then kill at a random moment of the next ones.
            wanted = rng.randint(1, 12)
            waited_for += wanted
            seen = "".join(writer.stdout.readline() for _ in range(wanted))
            time.sleep(rng.uniform(0, 0.02))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        for line in (seen + out).splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # cut mid-line: never fully reported
            words = line.split()
            if words[0] == "tx":
                first, second, n = map(int, words[1:])
                reported[first] = reported[second] = {"round": round_, "n": n}
                reported_tx[(round_, n)] = (first, second)
            else:
                seq, n = map(int, words)
                reported[seq] = {"round": round_, "n": n, "note": NOTE}
            total_reported += 1

        # What the device does on restart: open the journal, then check it.
        j = Journal(path)
        result = verify_file(path)
        assert result.ok, f"round {round_}: {result}"
        stored = {e.seq: e.body for e in j.entries()}
        for seq, body in reported.items():
            assert seq in stored, f"round {round_}: reported seq {seq} lost"
            assert stored[seq] == body
        if j.db.execute("SELECT 1 FROM sqlite_master WHERE name='handovers'").fetchone():
            rows = {(r, n): first for r, n, first in j.db.execute('SELECT round, n, first_seq FROM handovers')}
            for key, (first, _) in reported_tx.items():
                assert rows[key] == first
            for first in rows.values():  # never a store row without both of its entries
                assert stored[first]["n"] == stored[first + 1]["n"]
        j.close()
    assert total_reported >= waited_for > 200, "the writer barely ran; the test proved little"


# -- tamper evidence ------------------------------------------------------------------------


def test_a_hand_edited_body_is_named(journal, tmp_path):
    fill(journal, 10)
    tamper(tmp_path / "journal.db", "UPDATE journal SET body = ? WHERE seq = 5", ('{"n":5,"ok":true}',))
    for result in (verify_file(tmp_path / "journal.db"), journal.verify()):
        assert not result.ok
        assert result.first_bad_seq == 5 and result.checked == 4
        assert "entry 5" in result.reason and "edited" in result.reason


def test_an_edited_hash_is_named(journal, tmp_path):
    fill(journal, 10)
    tamper(tmp_path / "journal.db", "UPDATE journal SET hash = ? WHERE seq = 7", ("f" * 64,))
    result = verify_file(tmp_path / "journal.db")
    assert (result.ok, result.first_bad_seq) == (False, 7)


def test_an_entry_rewritten_with_a_fresh_hash_breaks_the_next_link(journal, tmp_path):
    entries = fill(journal, 10)
    e = entries[4]
    forged = entry_hash(e.seq, e.ts, e.kind, e.task_id, {"n": 5, "ok": True}, e.prev_hash)
    tamper(tmp_path / "journal.db", "UPDATE journal SET body = ?, hash = ? WHERE seq = 5", ('{"n":5,"ok":true}', forged))
    result = verify_file(tmp_path / "journal.db")
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert "entry 5" in result.reason


def test_a_deleted_middle_entry_is_named(journal, tmp_path):
    fill(journal, 10)
    tamper(tmp_path / "journal.db", "DELETE FROM journal WHERE seq = 4")
    result = verify_file(tmp_path / "journal.db")
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "missing" in result.reason


def test_entries_cut_from_the_end_after_sync_acknowledged_them_are_detected(journal, tmp_path):
    fill(journal, 10)
    journal.set_cursor("sync", 10)
    tamper(tmp_path / "journal.db", "DELETE FROM journal WHERE seq > 8")
    result = verify_file(tmp_path / "journal.db")
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 9, 8)
    assert "'sync'" in result.reason and "removed" in result.reason


def test_verify_file_refuses_what_is_not_a_journal(tmp_path):
    with pytest.raises(JournalError, match="no journal file"):
        verify_file(tmp_path / "absent.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(JournalError, match="not a readable journal"):
        verify_file(other)


# -- backups --------------------------------------------------------------------------------


def test_backup_taken_while_appending_verifies_and_rotates(journal, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "notes.txt").write_text("not a backup; rotation must leave it alone")
    fill(journal, 50)
    stop = threading.Event()
    failures = []

    def keep_appending():
        try:
            while not stop.is_set():
                journal.append("box_read", {"box": "B", "pad": "x" * 200}, task_id="D-9")
        except Exception as exc:  # surfaced below
            failures.append(exc)

    appender = threading.Thread(target=keep_appending)
    appender.start()
    copies = []
    try:
        for _ in range(5):
            before = journal.last_seq()
            copy = journal.backup(backups, keep=3)
            copies.append(copy)
            result = verify_file(copy)
            assert result.ok and result.checked >= before
    finally:
        stop.set()
        appender.join()
    assert not failures
    assert len(set(copies)) == 5, "two backups got the same name"
    remaining = sorted(p.name for p in backups.iterdir())
    assert remaining == sorted([c.name for c in copies[-3:]] + ["notes.txt"])
    assert not list(backups.glob("*-wal")) and not list(backups.glob("*.partial"))
    assert journal.verify().ok


def test_backup_refuses_bad_arguments(journal, tmp_path):
    with pytest.raises(JournalError, match="does not exist"):
        journal.backup(tmp_path / "missing")
    with pytest.raises(JournalError, match="at least 1"):
        journal.backup(tmp_path, keep=0)


# -- the published hash ---------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(kind=st.text(min_size=1), task_id=st.none() | st.text(), body=st.dictionaries(st.text(), json_values, max_size=5))
def test_appended_hashes_are_the_published_entry_hash(tmp_path_factory, kind, task_id, body):
    """Head office recomputes entry_hash from the published dict; append must agree for any content."""
    j = Journal(tmp_path_factory.mktemp("hash") / "journal.db")
    try:
        entry = j.append(kind, body, task_id=task_id)
        (read,) = j.entries()
        assert read == entry
        assert entry.hash == entry_hash(entry.seq, entry.ts, kind, task_id, body, GENESIS_HASH)
    finally:
        j.close()


@settings(max_examples=100, deadline=None)
@given(kind=st.text(min_size=1), task_id=st.none() | st.text(), body=st.dictionaries(st.text(), json_values, max_size=5),
       device=st.text(min_size=1, max_size=20))
def test_sync_sends_a_stored_row_exactly_as_the_entry_would_encode(tmp_path_factory, kind, task_id, body, device):
    """Sync publishes the stored body text as it is (no parse and re-encode): for any content the bytes on
    the wire are those of messages.encode_entry, which head office's schema and hash check expect."""
    j = Journal(tmp_path_factory.mktemp("wire") / "journal.db")
    try:
        j.append(kind, body, task_id=task_id)
        (entry,), (row,) = list(j.entries()), j.stored_rows(0, 10)
        wire = stored_encoder(device)(row)
        assert wire == messages.encode_entry(device, entry)
        sent = json.loads(wire)
        assert sent["body"] == body and entry_hash(sent["seq"], sent["ts"], sent["kind"], sent["task_id"],
                                                   sent["body"], sent["prev_hash"]) == sent["hash"]
    finally:
        j.close()


def test_verify_reads_a_journal_whose_wal_lost_its_index_on_a_read_only_disk(tmp_path):
    """A journal taken after a power cut (WAL without its -shm index) on a write-protected medium:
    `journal verify` must still read every committed entry, and change nothing."""
    j = Journal(tmp_path / "journal.db")
    for n in range(20):
        j.append("box_read", {"n": n})
    cut = tmp_path / "cut"
    cut.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(cut)], check=True)
    try:
        for name in ("journal.db", "journal.db-wal"):      # copied while open: the entries are in the WAL only
            (cut / name).write_bytes((tmp_path / name).read_bytes())
        j.close()
        subprocess.run(["mount", "-o", "remount,ro", str(cut)], check=True)

        result = verify_file(cut / "journal.db")
        assert result.ok and result.checked == 20, result
        out = subprocess.run([sys.executable, "-m", "agent.cli", "journal", "verify", "--db", str(cut / "journal.db")],
                             cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "20 entries" in out.stdout, out.stderr
    finally:
        subprocess.run(["umount", "-l", str(cut)], check=True)
