"""Code the tests share: tiny models, wandb's reader, training set-ups, launchers, servers.

Test modules import from here (`from tests.helpers.training import plain_trainer`), never from another test
module; scripts under tests/scripts import from here too.
"""
