"""Personal data at rest: after a whole handover through the real agent, people's names appear nowhere
in the journal (database and WAL) or the kept report — the journal carries person ids; names live
sealed in the store and are resolved only for the screen, the speaker and the paper."""
from __future__ import annotations

from test_agent_restart import half_way, to_the_end

from agent.sample import COMPANY, ESCORTS, OFFICERS

NAMES = [name for _, name in ESCORTS + OFFICERS] + [COMPANY]


def test_no_name_is_stored_in_clear_after_a_handover(agent):
    agent.start()
    done = to_the_end(agent, half_way(agent))
    # the screen still says who: names are resolved for display
    assert any("王强" in line for line in done["report"]["lines"])
    assert agent.stop() == 0

    journal = list(agent.state_dir.glob("journal.db*"))
    reports = list((agent.state_dir / "reports").iterdir())
    assert reports, "the report is kept as a file"
    at_rest = b"".join(p.read_bytes() for p in journal + reports)
    # the bytes searched are the records: the journal names the people, by id
    assert all(person_id.encode() in at_rest for person_id in ("E01", "O01")), [p.name for p in journal]
    for name in NAMES:
        assert name.encode() not in at_rest, f"{name} is stored in clear"

    agent.start()                                   # and after a restart the report still shows names
    lines = agent.view()["report"]["lines"]
    assert any("周敏" in line for line in lines) and any("王强" in line for line in lines)
