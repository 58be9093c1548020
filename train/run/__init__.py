"""What every training run shares: settings, config files, device, DDP, loop policies, schedules, logs, checkpoints.

:mod:`.settings` (:class:`~hema.train.run.settings.RunSettings`), :mod:`.config_files` (TOML and command-line
overrides), :mod:`.options` (the command-line options every run takes), :mod:`.device`, :mod:`.distributed`,
:mod:`.loop`, :mod:`.schedules`, :mod:`.log` and :mod:`.resumable_checkpoint`. Nothing is imported here, so that
``hema-train --help`` does not load torch.
"""
