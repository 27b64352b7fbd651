"""A long run of the card parsers' fuzz and property tests (the suite runs 400-500 examples each).

usage: python tests/bench/fuzz_cards_long.py [EXAMPLES]     (default 10000 per test)
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit")]

from hypothesis import settings  # noqa: E402

import test_keyed_tags  # noqa: E402
import test_ndef_fuzz  # noqa: E402

TESTS = [test_ndef_fuzz.test_any_ndef_message_bytes, test_ndef_fuzz.test_any_url_in_a_well_formed_record,
         test_ndef_fuzz.test_records_with_any_header_bits,
         test_ndef_fuzz.test_read_ndef_against_any_answers_ends_with_a_message_or_a_named_refusal,
         test_keyed_tags.test_no_answer_sequence_gets_a_keyed_uid_accepted_without_a_fresh_genuine_sun,
         test_keyed_tags.test_a_clone_alone_is_always_refused_and_never_moves_the_counter]


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    logging.disable(logging.WARNING)          # "card gave no UID" on every other example
    for test in TESTS:
        started = time.monotonic()
        test._hypothesis_internal_use_settings = settings(
            test._hypothesis_internal_use_settings, max_examples=examples, database=None)
        test()
        print(f"{test.__name__}: {examples} examples passed in {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
