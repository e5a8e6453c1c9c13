"""The stack's parameters, as template.yaml passes them to each function in its environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

import decisions
import targets


@dataclass(frozen=True)
class Settings:
    policy: decisions.Policy
    user_path: str = "/"
    user_tag_key: str = ""
    user_tag_value: str = ""
    secret_name_prefix: str = ""
    dry_run: bool = False
    sender_email: str = ""
    notification_emails: tuple[str, ...] = ()
    max_users_per_run: int = 0  # 0: no cap
    parallel_users: int = 5
    parallel_batches: int = 4
    consumer_principal_arn: str = ""
    owner_tag_key: str = ""
    owner_email_domains: tuple[str, ...] = ()
    bucket: str = ""  # the run bucket: every run's records
    account_id: str = ""
    event_bus: str = "default"  # where lifecycle events go (EventBusName)
    target_accounts: str = ""  # TargetAccounts: empty for this account only (targets.py)
    member_role_name: str = "iam-key-rotation-member"  # the role the hub assumes in each managed account
    partition: str = "aws"

    @classmethod
    def from_env(cls, env=os.environ) -> Settings:
        """Every function gets the variables it needs and no more: the others keep their defaults."""
        return cls(
            policy=decisions.Policy.from_days(
                int(env.get("MAX_KEY_AGE_DAYS", "90")),
                int(env.get("INSTALL_WINDOW_DAYS", "7")),
                int(env.get("RECOVERY_WINDOW_DAYS", "7")),
                int(env.get("NOTICE_DAYS", "0")),
                int(env.get("UNUSED_HOURS", "24")),
                env.get("KEY_IN_USE_AT_MAX_AGE", "Keep") == "Deactivate",
            ),
            user_path=env.get("USER_PATH", "/"),
            user_tag_key=env.get("USER_TAG_KEY", ""),
            user_tag_value=env.get("USER_TAG_VALUE", ""),
            secret_name_prefix=env.get("SECRET_NAME_PREFIX", ""),
            dry_run=env.get("DRY_RUN", "false").lower() == "true",
            sender_email=env.get("SENDER_EMAIL", ""),
            notification_emails=_listed(env.get("NOTIFICATION_EMAILS", "")),
            max_users_per_run=int(env.get("MAX_USERS_PER_RUN", "0")),
            parallel_users=int(env.get("PARALLEL_USERS", "5")),
            parallel_batches=int(env.get("PARALLEL_BATCHES", "4")),
            consumer_principal_arn=env.get("CONSUMER_PRINCIPAL_ARN", ""),
            owner_tag_key=env.get("OWNER_TAG_KEY", ""),
            owner_email_domains=tuple(d.lower() for d in _listed(env.get("OWNER_EMAIL_DOMAINS", ""))),
            bucket=env.get("RUN_BUCKET", ""),
            account_id=env.get("ACCOUNT_ID", ""),
            event_bus=env.get("EVENT_BUS_NAME", "default"),
            target_accounts=env.get("TARGET_ACCOUNTS", ""),
            member_role_name=env.get("MEMBER_ROLE_NAME", "iam-key-rotation-member"),
            partition=env.get("PARTITION", "aws"),
        )

    @property
    def many_accounts(self) -> bool:
        """Whether this hub manages accounts other than its own (reports then name each user's account)."""
        return bool(self.target_accounts.strip())

    def member_role(self, account: str) -> str:
        """The role the state machine's Tasks act as in ``account``: keys and secrets' writes."""
        return targets.member_role_arn(self.partition, account, self.member_role_name)

    def reader_role(self, account: str) -> str:
        """The role the planning, key status and reconcile functions read ``account`` as."""
        return targets.member_role_arn(self.partition, account, self.member_role_name + targets.READER_SUFFIX)

    def scope(self) -> str:
        tag = f" tagged {self.user_tag_key}={self.user_tag_value}" if self.user_tag_key else ""
        return f"users under path {self.user_path}{tag}"


def _listed(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
