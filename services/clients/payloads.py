"""What a client card is made of and what client events carry (shared by the entrypoint modules;
``service`` imports the mixins, so they cannot import it)."""

CARD_FIELDS = ("short_name", "full_name", "legal_form", "inn", "kpp", "ogrn", "region",
               "addresses", "phones", "emails", "website", "industry", "segment", "status",
               "source", "erp_partner_guid", "erp_counterparty_guid")


def snapshot(client: dict, by=None) -> dict:
    """The common part of client events."""
    return {
        "client_id": client["id"], "short_name": client["short_name"], "inn": client["inn"],
        "kpp": client["kpp"], "region": client["region"], "status": client["status"],
        "segment": client["segment"], "owner_id": client["owner_id"],
        "department_id": client["department_id"], "phones": client["phones"],
        "emails": client["emails"], "erp_counterparty_guid": client["erp_counterparty_guid"],
        "erp_partner_guid": client["erp_partner_guid"], "changed_by": by,
    }
