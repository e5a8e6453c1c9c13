"""The rotation over months of a real account, as a Hypothesis state machine: what an account sees, in any order.

Each example deploys the real template into a fresh emulated account and then takes steps, chosen by Hypothesis:
scheduled runs days apart, forced and dry runs, two runs at once, runs in which one AWS call fails (once, or for the
whole run, or takes effect and loses its response), and a person at work between runs: keys created, deactivated,
re-activated or deleted by hand, secrets overwritten or deleted, users untagged, re-tagged, moved, renamed in
case or deleted. After every run, the README's invariants are checked on what the run did
(Emulator.invariant_violations), and every text it published is scanned for every secret IAM ever issued.

tests/test_model.py runs a bounded number of examples in ``make test``; ``make soak`` (bench/soak.py) runs many
and prints what it explored. A failing example Hypothesis finds is printed as a short program: save it as a
regular test in tests/test_model.py.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

import decisions
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from . import account, credential_report, stack
from .faults import failing, in_state
from .model_draws import DAYS, EDITS, FAULTS, RUNS, SCOPE_TAG, accounts, organizations
from .runner import Emulator, Run

class Explored:
    """What the examples did, for ``make soak`` to print."""

    def __init__(self):
        self.examples = 0
        self.steps = Counter()
        self.runs = 0
        self.outcomes = Counter()
        self.statuses = Counter()


EXPLORED = Explored()



def _summary(run: Run) -> dict | None:
    """The run's summary, unless it stood aside for a run already running (single flight)."""
    summary = run.summary
    return None if summary is None or summary.get("skipped") else summary


# Where run A of two_runs_at_once waits: the first state after every user was planned and the actions queued.
PAUSE_AFTER_THE_PLAN = "Anything to act on?"


class RotationModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.aws: Emulator | None = None
        self.where = stack.ACCOUNT_ID  # the account a person's change, or a forced run, acts in

    @initialize(fixture=accounts())
    def deploy(self, fixture):
        self.aws = Emulator(fixture).__enter__()
        EXPLORED.examples += 1

    def teardown(self):
        if self.aws is not None:
            self.aws.__exit__(None, None, None)

    # --- what happens between two checks: a run, or a person at work -------------------------------------------

    @rule(data=st.data())
    def a_run(self, data):
        kind = data.draw(st.sampled_from(RUNS), label="run")
        EXPLORED.steps[kind] += 1
        getattr(self, kind)(data)

    @rule(data=st.data())
    def a_person_changes_the_account(self, data):
        edit = data.draw(st.sampled_from(EDITS), label="edit")
        EXPLORED.steps[edit] += 1
        self._choose_an_account(data)
        getattr(self, edit)(data)

    # --- runs ----------------------------------------------------------------------------------------------------

    def scheduled_run(self, data):
        self.aws.advance(data.draw(DAYS, label="days later"))
        self._check(self.aws.scheduled_run())

    def forced_run(self, data):
        self._choose_an_account(data)
        users = self._users()
        names = sorted({self._pick(users, data) for _ in range(data.draw(st.integers(1, 2), label="users"))} - {None})
        if names and data.draw(st.booleans(), label="one named twice, in another case"):
            names.append(names[0].swapcase())
        execution_input = {**self._named(names or ["nobody"]), "force": True}
        if data.draw(st.booleans(), label="at the scheduled time"):
            execution_input["time"] = decisions.format_time(self.aws.schedule)
        self._check(self.aws.start(execution_input))

    def dry_run(self, data):
        run = self.aws.start({**self.aws.scheduled_input(), "dryRun": True})
        assert _changed_nothing(run), "a dry run changed something"
        self._check(run)

    def run_with_a_failing_call(self, data):
        service, method, code, after = data.draw(st.sampled_from(FAULTS), label="failing call")
        lasting = data.draw(st.booleans(), label="for the whole run")
        self.aws.advance(data.draw(DAYS, label="days later"))
        with failing(service, method, code, times=None if lasting else 1, after=after, runs_only=True):
            self._check(self.aws.scheduled_run())

    def two_runs_at_once(self, data):
        """Run A pauses right after its plan; run B starts meanwhile and must change nothing."""
        paused, release, first = threading.Event(), threading.Event(), []

        def hold_the_first():
            if not first:
                first.append(True)
                paused.set()
                release.wait(30)

        runs: list[Run] = []
        with in_state(PAUSE_AFTER_THE_PLAN, before=hold_the_first):
            a = threading.Thread(target=lambda: runs.append(self.aws.scheduled_run()), daemon=True)
            a.start()
            reached = paused.wait(10)
            if reached:
                self.where = stack.ACCOUNT_ID
                b = self.aws.start({**self._named(self._users()[:1] or ["nobody"]), "force": True})
                assert b.output and b.output.get("skipped") is True, f"run B went ahead while A was running: {b.output}"
                assert _changed_nothing(b), "run B changed something"
                self._check(b)
            release.set()
            a.join(60)
        assert not a.is_alive(), "run A never finished"
        # A state renamed in the ASL must fail here, not quietly stop testing single flight.
        assert reached, f"run A never entered {PAUSE_AFTER_THE_PLAN!r}: {[r.status for r in runs]}"
        for run in runs:
            self._check(run)

    # --- a person at work ----------------------------------------------------------------------------------------

    def create_a_key(self, data):
        user = self._pick(self._users(), data)
        if user and len(self._keys(user)) < 2:
            self._client("iam").create_access_key(UserName=user)

    def set_a_key_status(self, data):
        user = self._pick(self._users(), data)
        key = self._pick(self._keys(user), data) if user else None
        if key:
            status = data.draw(st.sampled_from(["Active", "Inactive"]), label="status")
            self._client("iam").update_access_key(UserName=user, AccessKeyId=key, Status=status)

    def delete_a_key(self, data):
        user = self._pick(self._users(), data)
        key = self._pick(self._keys(user), data) if user else None
        if key:
            self._client("iam").delete_access_key(UserName=user, AccessKeyId=key)

    def overwrite_a_secret(self, data):
        name = self._pick(self._secrets(), data)
        if name is None:
            return
        sm = self._client("secretsmanager")
        value = data.draw(st.sampled_from(["text", "another user's key", "the previous version"]), label="value")
        if value == "text":
            sm.put_secret_value(SecretId=name, SecretString="see the wiki")
        elif value == "another user's key":
            other = next((u for u in self._users() if self._keys(u)), None)
            if other:
                key = self._keys(other)[0]
                sm.put_secret_value(SecretId=name, SecretString=json.dumps({"UserName": other, "AccessKeyId": key, "SecretAccessKey": "x"}))
        else:  # AWSCURRENT moved back to the previous version, as the recovery advice allows
            stages = sm.describe_secret(SecretId=name).get("VersionIdsToStages", {})
            current = next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
            previous = next((v for v, s in stages.items() if "AWSPREVIOUS" in s), None)
            if current and previous:
                sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=previous, RemoveFromVersionId=current)

    def delete_a_secret(self, data):
        name = self._pick(self._secrets(), data)
        if name is not None:
            sm = self._client("secretsmanager")
            if data.draw(st.booleans(), label="with a recovery window"):
                sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
            else:
                sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)

    def tag_or_untag_a_user(self, data):
        user = self._pick(self._users(), data)
        if user and data.draw(st.booleans(), label="tag"):
            self._client("iam").tag_user(UserName=user, Tags=[{"Key": k, "Value": v} for k, v in SCOPE_TAG.items()])
        elif user:
            self._client("iam").untag_user(UserName=user, TagKeys=list(SCOPE_TAG))

    def move_a_user(self, data):
        user = self._pick(self._users(), data)
        if user:
            self._client("iam").update_user(UserName=user, NewPath=data.draw(st.sampled_from(["/", "/retired/"]), label="path"))

    def rename_a_user_in_case(self, data):
        user = self._pick(self._users(), data)
        if user:
            self._client("iam").update_user(UserName=user, NewUserName=user.swapcase())

    def delete_a_user(self, data):
        user = self._pick(self._users(), data)
        if user:  # as a person must: its keys first
            for key in self._keys(user):
                self._client("iam").delete_access_key(UserName=user, AccessKeyId=key)
            self._client("iam").delete_user(UserName=user)

    def onboard_a_user(self, data):
        name = f"new-{len(self._users())}"
        if name.lower() not in {u.lower() for u in self._users()}:
            self._client("iam").create_user(UserName=name, Tags=[{"Key": k, "Value": v} for k, v in SCOPE_TAG.items()])
            if data.draw(st.booleans(), label="with a key"):
                self._client("iam").create_access_key(UserName=name)

    # --- the checks ----------------------------------------------------------------------------------------------

    def _check(self, run: Run) -> None:
        EXPLORED.runs += 1
        EXPLORED.statuses[run.status] += 1
        for user in (run.output or {}).get("users", []):
            EXPLORED.outcomes[user["outcome"]] += 1
        violations = self.aws.invariant_violations(run)
        assert violations == [], f"{run.name} broke an invariant: {violations}"
        assert self.aws.leaked_texts(run) == [], f"{run.name} published secret material"
        assert run.status in ("SUCCEEDED", "FAILED"), f"{run.name} ended {run.status}"
        unreported = self._broken_by_hand_and_unreported(run)
        assert unreported == [], f"{run.name} was silent about users whose secret a person broke: {unreported}"

    def _broken_by_hand_and_unreported(self, run: Run) -> list[str]:
        """Managed users whose secret, before a scheduled run, held no working key (overwritten, deleted, or its
        key deactivated or deleted by hand) and whom the run's report does not name, in every account the hub
        reaches (``account/user`` for a member account's)."""
        summary = _summary(run)
        if summary is None or summary.get("error") or "users" in (run.input or {}) or not isinstance(summary.get("users"), list):
            return []  # skipped, failed as a whole (loudly: FAILED, the alarm), restricted to the users it names, or
            # a cause too long for the users (the execution history has them)
        hub = stack.ACCOUNT_ID
        named = {(u.get("account", hub), decisions.user_key(u["user"])) for u in summary.get("users", [])}
        prefix = self.aws.secret_prefix
        broken = []
        for account_id in self._reached_accounts():
            if any(a["account"] == account_id and a["failsRun"] for a in run.unreachable_accounts):
                continue  # named as a whole ("account(s) not reached", the run FAILED): it could not be read
            # A change since IAM wrote the account's credential report (at most four hours before) the run could
            # not see: the first run with a newer report names the user (docs/reliability.md).
            unseen = credential_report.users_the_report_shows_otherwise(account_id)
            before = run.accounts[account_id]
            users = self.aws.managed_users(account_id)
            secrets = {decisions.user_key(n[len(prefix):]): s for n, s in before.secrets_before.items()}
            for user, tags in users.items():
                secret = secrets.get(decisions.user_key(user))
                keys = next((ks for u, ks in before.keys_before.items() if decisions.user_key(u) == decisions.user_key(user)), {})
                if secret is None:
                    lost = decisions.SECRET_TAG in tags  # the workflow stored a key there, and it is gone
                elif secret.deleted:
                    lost = True
                else:
                    lost = secret.current_version is not None and keys.get(secret.current_key) != "Active"
                if lost and (account_id, decisions.user_key(user)) not in named and decisions.user_key(user) not in unseen:
                    broken.append(user if account_id == hub else f"{account_id}/{user}")
        return broken

    # --- the account, as a person sees it ------------------------------------------------------------------------

    def _choose_an_account(self, data) -> None:
        """Where the next change or forced run acts: with one account, the hub's (no draw)."""
        self.where = stack.ACCOUNT_ID

    def _reached_accounts(self) -> list[str]:
        """The accounts whose users the runs manage."""
        return [stack.ACCOUNT_ID]

    def _named(self, users: list[str]) -> dict:
        """An on-demand run's input naming ``users`` of the account chosen."""
        return {"users": users}

    def _client(self, service: str):
        return account.client_in(service, self.where)

    def _users(self) -> list[str]:
        return sorted(account.account_keys(self.where))

    def _keys(self, user: str) -> list[str]:
        return sorted(account.account_keys(self.where).get(user, {}))

    def _secrets(self) -> list[str]:
        return sorted(n for n, s in account.workflow_secrets(self.aws.secret_prefix, self.where).items() if not s.deleted)

    @staticmethod
    def _pick(choices: list[str], data) -> str | None:
        return data.draw(st.sampled_from(choices), label="which") if choices else None


class OrganizationModel(RotationModel):
    """The same months for a hub managing its organization: each run acts in every account the hub reaches, a
    person changes any account, a forced run names users of one account, and every check holds account by account."""

    @initialize(fixture=organizations())
    def deploy(self, fixture):
        super().deploy(fixture)

    def _choose_an_account(self, data) -> None:
        self.where = data.draw(st.sampled_from(self.aws.account_ids), label="account")

    def _reached_accounts(self) -> list[str]:
        stacked = {spec["name"] for spec in self.aws.fixture["organization"]["accounts"] if spec.get("memberStack", True)}
        return [stack.ACCOUNT_ID] + [i for name, i in self.aws.member_accounts.items() if name in stacked]

    def _named(self, users: list[str]) -> dict:
        return {"users": users, "accounts": [self.where]}


def _changed_nothing(run: Run) -> bool:
    """Whether every account's keys and secrets are as they were before the run."""
    return all((s.keys_after, s.secrets_after) == (s.keys_before, s.secrets_before) for s in run.accounts.values())
