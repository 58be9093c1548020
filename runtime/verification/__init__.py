"""Verification at the workstation: ``hema-infer review RUN_DIR``, where a technologist confirms or corrects cells.

The workflow, one module each: the run's ``cells.csv`` is read and checked (:mod:`.run_table`); every decision
is appended durably to ``RUN_DIR/verification.jsonl`` (:mod:`.journal`), with the conflict rule for two tabs;
decisions add up to verified classes, differentials and the model's agreement (:mod:`.tally`), written as
``verified.csv``, ``verified_summary.json`` and the printable ``verified_report.html`` (:mod:`.outputs`,
:mod:`.report_page`); the verified cells become a labelled folder to learn from (:mod:`.labelled_export`). The page
(:mod:`.page`) is served by Python's own ``http.server`` (:mod:`.server`, :mod:`.session`, :mod:`.app`): nothing
beyond the lean runtime is needed. Nothing is imported here, so that ``hema-infer --help`` stays light.
"""
