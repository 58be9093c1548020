"""Onboarding a model to a new lab (``hema-train onboard``): its cells embedded, the model adapted and judged.

:mod:`.lab_cells` reads and embeds the lab's cells, :mod:`.adaptation` decides what changes (alignment, head,
thresholds) and estimates accuracy, :mod:`.onboarding` writes the onboarded model, :mod:`.report` the JSON and
HTML report, :mod:`.command` is the command. Onboarding writes a fused model, so it lives in ``hema.export``;
``hema-train`` only names the command. Nothing is imported here, so that ``--help`` stays light.
"""
