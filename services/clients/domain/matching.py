"""Ranking of duplicate candidates found by the exact keys and the fuzzy name index.

A *blocking* match means "this is the same counterparty": creating it again is refused (or, for
one's own client, the existing one is returned). Weaker matches are shown to the person but do not
block: another branch of the same company (same INN, other KPP), or a similar name with another INN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Trigram similarity of name keys at and above which two names are "the same name".
SAME_NAME = 0.9
# ... and from which a name is worth showing as similar.
SIMILAR_NAME = 0.6

REASON_SCORES = {"inn_kpp": 1.0, "inn": 0.98, "email": 0.9, "phone": 0.85,
                 "inn_other_branch": 0.6}


@dataclass
class Match:
    client_id: str
    score: float = 0.0
    blocking: bool = False
    reasons: list[dict] = field(default_factory=list)

    def add(self, reason: str, value: str, score: float, blocking: bool,
            contact_id: str | None = None):
        entry = {"reason": reason, "value": value}
        if contact_id:  # a phone or e-mail of a contact person: whose it is
            entry["contact_id"] = contact_id
        self.reasons.append(entry)
        self.score = max(self.score, score)
        self.blocking = self.blocking or blocking


def rank(candidate: dict, exact: list[tuple[str, str, dict]],
         fuzzy: list[tuple[dict, float]]) -> list[tuple[Match, dict]]:
    """``exact``: (kind, value, client row) hits of the identifiers index; ``fuzzy``: (client row,
    similarity of name keys). Returns (match, client row) best first."""
    matches: dict[str, tuple[Match, dict]] = {}

    def match_for(row) -> Match:
        key = str(row["id"])
        if key not in matches:
            matches[key] = (Match(client_id=key), row)
        return matches[key][0]

    for kind, value, row in exact:
        m = match_for(row)
        if kind == "inn":
            other_branch = bool(candidate.get("kpp") and row.get("kpp")
                                and candidate["kpp"] != row["kpp"])
            if other_branch:
                m.add("inn_other_branch", value, REASON_SCORES["inn_other_branch"], False)
            else:
                m.add("inn", value, REASON_SCORES["inn"], True)
        else:
            contact_id = row.get("matched_contact_id")
            m.add(kind, value, REASON_SCORES[kind], True,
                  contact_id=str(contact_id) if contact_id else None)

    for row, similarity in fuzzy:
        if similarity < SIMILAR_NAME:
            continue
        both_have_inn = candidate.get("inn") and row.get("inn")
        if both_have_inn and candidate["inn"] != row["inn"]:
            match_for(row).add("similar_name_other_inn", row["short_name"],
                               round(0.5 * similarity, 3), False)
        elif similarity >= SAME_NAME:
            match_for(row).add("name", row["short_name"], round(0.8 * similarity, 3), True)
        else:
            match_for(row).add("similar_name", row["short_name"], round(0.7 * similarity, 3),
                               False)

    return sorted(matches.values(), key=lambda item: (-item[0].blocking, -item[0].score))
