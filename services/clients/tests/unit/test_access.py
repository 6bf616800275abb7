import uuid

import pytest

from crm_platform.errors import Forbidden
from crm_platform.identity import Identity
from services.clients.domain.access import can_edit, can_read, require_edit

URAL, VOLGA = str(uuid.uuid4()), str(uuid.uuid4())
ME, COLLEAGUE = str(uuid.uuid4()), str(uuid.uuid4())


def client(owner, department):
    return {"owner_id": uuid.UUID(owner) if owner else None,
            "department_id": uuid.UUID(department)}


def who(role, user=None, department=None):
    return Identity(user_id=user or str(uuid.uuid4()), role=role, department_id=department)


CASES = [
    # identity, client, read, edit
    (who("manager", ME, URAL), client(ME, URAL), True, True),
    (who("manager", ME, URAL), client(COLLEAGUE, URAL), False, False),
    (who("manager", ME, URAL), client(None, URAL), True, False),      # own department's pool
    (who("manager", ME, URAL), client(None, VOLGA), False, False),
    (who("sales_head", None, URAL), client(COLLEAGUE, URAL), True, True),
    (who("sales_head", None, URAL), client(COLLEAGUE, VOLGA), False, False),
    (who("director"), client(COLLEAGUE, VOLGA), True, True),
    (who("integration"), client(COLLEAGUE, VOLGA), True, True),
    (who("admin"), client(COLLEAGUE, VOLGA), False, False),           # no browsing of PD
]


@pytest.mark.parametrize("identity, row, read, edit", CASES)
def test_access_matrix(identity, row, read, edit):
    assert (can_read(identity, row), can_edit(identity, row)) == (read, edit)


def test_a_pool_client_is_read_only_until_claimed():
    with pytest.raises(Forbidden) as caught:
        require_edit(who("manager", ME, URAL), client(None, URAL))
    assert caught.value.code == "client_read_only"


def test_someone_elses_client_is_simply_denied():
    with pytest.raises(Forbidden) as caught:
        require_edit(who("manager", ME, URAL), client(COLLEAGUE, URAL))
    assert caught.value.code == "client_access_denied"
