"""`make run` and `python -m emulator run`: the commands a newcomer types, end to end."""

from emulator import __main__ as cli
from emulator import stack


def test_the_demo_walks_the_lifecycle_and_its_checks_pass(capsys):
    exit_code = cli.main([])

    shown = capsys.readouterr().out
    assert exit_code == 0
    for day in (0, 7, 14, 21):
        assert f"Day {day}: scheduled run" in shown
    for outcome in ("ROTATED", "RETIRED", "BLOCKED"):
        assert f": {outcome}" in shown
    assert "Subject: IAM access key rotation 2026-01-05T06:00:00Z: 1 rotated, 1 blocked" in shown
    assert "Timeline of run-001" in shown and "Act on each user" in shown
    assert "invariants (AWSCURRENT is an Active key of its user; every key created is stored; no Active key deleted): hold" in shown
    assert "Lambda payloads: none" in shown


def test_one_event_file_runs_against_an_account_fixture(capsys):
    exit_code = cli.main(["run", "--event", str(stack.ROOT / "events" / "on-demand-rotation.json")])

    shown = capsys.readouterr().out
    assert exit_code == 0
    assert "ci-deployer: ROTATED" in shown and "rotation forced on demand" in shown


def test_a_bad_parameter_is_refused_with_a_clear_message(capsys):
    exit_code = cli.main(["demo", "--param", "UserPath=no-slash"])

    assert exit_code == 2
    assert "parameter UserPath='no-slash'" in capsys.readouterr().err
