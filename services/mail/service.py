"""nameko entrypoints of the mail service: mailboxes synced over IMAP, threaded and matched to
clients; mail sent from the CRM recorded.

* mailboxes (here): CRUD for the admin (or the owner of a personal mailbox), status, sync now;
* the periodic sync with a lease per mailbox (``sync``), registration (``registration``);
* reading with access rules (``reading``), sending over SMTP (``sending``);
* replicas of clients, their addresses and deals from events (``replicas``) and of the
  organisation (``OrganisationReplica``).

Config: ``MAIL_OWN_DOMAINS`` (our domains, never clients: "roofcrm.ru, roof.example"),
``MAIL_ATTACHMENTS_DIR`` (attachment store; default under the system temp folder),
``MAIL_CLIENT_LOOKUP`` ("rpc": ask the clients service about unknown addresses; "replica": the
local replica only), ``MAIL_LOOKUP_TTL_SECONDS`` (600), ``MAIL_SERVICE_USER_ID`` (the integration
identity it asks clients as), the ``MAIL_SYNC_*`` / ``MAIL_RETRY_*`` / ``MAIL_LEASE_SECONDS`` /
``MAIL_FETCH_BATCH`` keys of ``sync``, ``MAIL_IMAP_TIMEOUT_SECONDS``, ``MAIL_SMTP_TIMEOUT_SECONDS``,
the ``CAMPAIGN_SEND_*`` keys of ``campaign_mail`` (campaign e-mail at a set rate, bounces).
Mailbox passwords live in the environment (``secret_ref`` ``env:NAME``), never in the database.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.errors import Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.identity import Identity
from crm_platform.organisation import OrganisationReplica
from crm_platform.rpc import rpc
from crm_platform.service import PersistentService

from .attachment_store import AttachmentStore, default_dir
from .campaign_mail import CampaignMailEntrypoints
from .domain.access import can_manage_mailbox, holds_mailbox
from .domain.mailboxes import FIELDS as MAILBOX_FIELDS
from .domain.mailboxes import check_mailbox
from .domain.matching import parse_own_domains
from .models import departments, mailbox_folders, mailboxes, staff
from .privacy import PrivacyEntrypoints
from .reading import ReadingEntrypoints, as_uuid, dump_row
from .registration import AddressResolver, Registrar
from .replicas import ReplicaEntrypoints
from .sending import SendingEntrypoints
from .sync import SyncEntrypoints

DEFAULT_SERVICE_USER_ID = "00000000-0000-4000-8000-0000000007e2"
STATUS_FIELDS = ("failures", "last_error", "last_error_at", "last_synced_at", "next_sync_at",
                 "leased_until", "last_sync")


class MailService(OrganisationReplica, ReplicaEntrypoints, SyncEntrypoints, ReadingEntrypoints,
                  SendingEntrypoints, CampaignMailEntrypoints, PrivacyEntrypoints,
                  PersistentService):
    name = "mail"
    staff_table = staff
    departments_table = departments

    config = Config()
    clients_rpc = RpcProxy("clients")

    # -- collaborators ----------------------------------------------------------------------------
    def attachment_store(self) -> AttachmentStore:
        return AttachmentStore(self.config.get("MAIL_ATTACHMENTS_DIR") or default_dir())

    def _service_identity(self) -> Identity:
        return Identity(user_id=str(self.config.get("MAIL_SERVICE_USER_ID")
                                    or DEFAULT_SERVICE_USER_ID),
                        role="integration", username="mail", full_name="Почта")

    def _find_by_emails(self, emails: list[str]) -> list[dict]:
        # The lookup runs as the mail service, then the caller's identity is put back: what the
        # entrypoint does next (send_message reading the message it sent) is still the caller's.
        previous = self.caller.identity if self.caller.present else None
        self.caller.act_as(self._service_identity())
        try:
            return self.clients_rpc.find_duplicates({"emails": emails}, similar=False)
        finally:
            if previous is not None:
                self.caller.act_as(previous)

    def registrar(self) -> Registrar:
        lookup = str(self.config.get("MAIL_CLIENT_LOOKUP") or "rpc").lower()
        resolver = AddressResolver(
            self._find_by_emails if lookup == "rpc" else None,
            timedelta(seconds=as_int(self.config.get("MAIL_LOOKUP_TTL_SECONDS"), 600)))
        return Registrar(self.outbox, self.attachment_store(), resolver,
                         parse_own_domains(self.config.get("MAIL_OWN_DOMAINS", "")))

    # -- mailboxes --------------------------------------------------------------------------------
    def _mailbox(self, session, mailbox_id) -> dict:
        row = session.execute(sa.select(mailboxes).where(
            mailboxes.c.id == as_uuid(mailbox_id, "mailbox_id"),
            mailboxes.c.deleted_at.is_(None))).mappings().first()
        if row is None:
            raise NotFound("Почтовый ящик не найден", code="mailbox_not_found")
        return dict(row)

    @staticmethod
    def _dump_mailbox(row: dict, folders=()) -> dict:
        out = dump_row({k: v for k, v in row.items() if k not in ("lease_owner",)})
        out["status"] = "error" if row["last_error"] else (
            "syncing" if row["leased_until"] and row["leased_until"] > utcnow() else
            ("ok" if row["last_synced_at"] else "pending"))
        out["next_attempt_at"] = out["next_sync_at"]
        out["folders"] = [dump_row(f) for f in folders]
        return out

    def _check_people(self, session, values: dict) -> dict:
        if values["owner_id"] is not None:
            person = session.execute(sa.select(staff).where(
                staff.c.user_id == values["owner_id"])).mappings().first()
            if person is None:
                raise ValidationFailed("Нет такого сотрудника", fields={
                    "owner_id": ["сотрудник не найден"]})
            if values["department_id"] is None:
                values["department_id"] = person["department_id"]
        return values

    @staticmethod
    def _check_address_free(session, address: str, own_id=None) -> None:
        query = sa.select(mailboxes.c.id).where(mailboxes.c.address == address,
                                                mailboxes.c.deleted_at.is_(None))
        if own_id is not None:
            query = query.where(mailboxes.c.id != own_id)
        if session.execute(query).first():
            raise ValidationFailed("Ящик уже подключён", fields={
                "address": ["этот адрес уже подключён"]})

    @rpc
    @idempotent
    def create_mailbox(self, data: dict) -> dict:
        """Connect a mailbox (admin; a user may connect own personal one): ``address``,
        ``kind`` (personal/shared), ``owner_id`` / ``department_id``, ``imap_host``,
        ``imap_port``, ``imap_tls``, ``login``, ``secret_ref`` ("env:NAME": the password stays
        out of the database), ``sent_folder``, ``smtp_host``, ``smtp_port``, ``smtp_security``,
        ``sync_interval_seconds``, ``enabled``."""
        identity = self.caller.require()
        values = check_mailbox(dict(data or {}))
        if not can_manage_mailbox(identity, values) or (
                identity.role != "admin" and values["kind"] != "personal"):
            raise Forbidden("Подключать чужие ящики может только администратор",
                            code="mailbox_forbidden")
        now = utcnow()
        with self.db.session() as session:
            values = self._check_people(session, values)
            self._check_address_free(session, values["address"])
            row = session.execute(sa.insert(mailboxes).values(
                id=uuid.uuid4(), **values, created_at=now, updated_at=now,
                created_by=identity.user_id, next_sync_at=now).returning(*mailboxes.c)) \
                .mappings().one()
            return self._dump_mailbox(dict(row))

    @rpc
    def update_mailbox(self, mailbox_id: str, changes: dict) -> dict:
        """Change a mailbox's settings (admin, or the owner of a personal mailbox)."""
        identity = self.caller.require()
        with self.db.session() as session:
            current = self._mailbox(session, mailbox_id)
            if not can_manage_mailbox(identity, current):
                raise Forbidden("Нет доступа к ящику", code="mailbox_forbidden")
            values = check_mailbox(dict(changes or {}), {
                k: current[k] for k in current if k in MAILBOX_FIELDS})
            if identity.role != "admin" and (values["owner_id"] != current["owner_id"] or
                                             values["kind"] != current["kind"]):
                raise Forbidden("Сменить владельца может только администратор",
                                code="mailbox_forbidden")
            values = self._check_people(session, values)
            self._check_address_free(session, values["address"], current["id"])
            row = session.execute(sa.update(mailboxes).where(mailboxes.c.id == current["id"])
                                  .values(**values, updated_at=utcnow())
                                  .returning(*mailboxes.c)).mappings().one()
            return self._dump_mailbox(dict(row))

    @rpc
    def delete_mailbox(self, mailbox_id: str) -> dict:
        """Disconnect a mailbox (admin, or its owner). Its messages stay with their clients."""
        identity = self.caller.require()
        with self.db.session() as session:
            current = self._mailbox(session, mailbox_id)
            if not can_manage_mailbox(identity, current):
                raise Forbidden("Нет доступа к ящику", code="mailbox_forbidden")
            session.execute(sa.update(mailboxes).where(mailboxes.c.id == current["id"])
                            .values(deleted_at=utcnow(), enabled=False))
        return {"deleted": True, "id": str(current["id"])}

    @rpc
    def list_mailboxes(self) -> list[dict]:
        """Mailboxes with their sync status: all for the admin, else those the caller holds."""
        identity = self.caller.require()
        with self.db.session() as session:
            rows = session.execute(sa.select(mailboxes).where(
                mailboxes.c.deleted_at.is_(None)).order_by(mailboxes.c.address)) \
                .mappings().all()
        return [self._dump_mailbox(dict(r)) for r in rows
                if identity.role == "admin" or holds_mailbox(identity, r)
                or can_manage_mailbox(identity, r)]

    @rpc
    def get_mailbox(self, mailbox_id: str) -> dict:
        """One mailbox's settings and status: ``status`` (pending/ok/syncing/error),
        ``last_error``, ``failures``, ``next_attempt_at``, ``last_synced_at``, ``last_sync``
        counts, and each folder's UIDVALIDITY and last UID."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._mailbox(session, mailbox_id)
            if not (identity.role == "admin" or holds_mailbox(identity, row)
                    or can_manage_mailbox(identity, row)):
                raise NotFound("Почтовый ящик не найден", code="mailbox_not_found")
            folders = session.execute(sa.select(
                mailbox_folders.c.folder, mailbox_folders.c.uidvalidity,
                mailbox_folders.c.last_uid, mailbox_folders.c.resyncs,
                mailbox_folders.c.synced_at).where(
                mailbox_folders.c.mailbox_id == row["id"]).order_by(mailbox_folders.c.folder)) \
                .mappings().all()
        return self._dump_mailbox(row, folders)

    @rpc
    def sync_now(self, mailbox_id: str) -> dict:
        """Sync a mailbox now (admin, or who holds it): the counts (``registered``,
        ``duplicates``, ``fetched``, ``resynced`` folders) or the error; 409 while another
        sync of it runs."""
        identity = self.caller.require()
        with self.db.session() as session:
            row = self._mailbox(session, mailbox_id)
        if not (identity.role in ("admin", "integration") or holds_mailbox(identity, row)):
            raise Forbidden("Нет доступа к ящику", code="mailbox_forbidden")
        return self.sync_mailbox_now(row["id"])
