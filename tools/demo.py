"""The demo data set, loaded through the gateway's public API as the admin (so it exercises the same
paths people use). Idempotent: what exists is kept, what is missing is created.

    python -m tools.demo --gateway http://127.0.0.1:8000

It loads the organisation (6 regional sales departments, their heads, managers with PBX
extensions and mailboxes, a director and the integration accounts), clients with contacts and
deals with their tasks and meetings, web forms, lead distribution, consents and a draft campaign.
Each service adds its own part (calls, e-mails, ERP documents) to ``STEPS`` as it arrives.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from decimal import Decimal

import requests
from rich.progress import Progress

from crm_platform.config import env

DEMO_PASSWORD = "demo12345"

DEPARTMENTS = [
    ("center", "Центральный отдел",
     ["RU-MOW", "RU-MOS", "RU-TVE", "RU-KLU", "RU-TUL", "RU-RYA", "RU-VLA", "RU-YAR"]),
    ("northwest", "Северо-Западный отдел", ["RU-SPE", "RU-LEN"]),
    ("volga", "Приволжский отдел", ["RU-NIZ", "RU-TA", "RU-BA", "RU-SAM", "RU-PER", "RU-UD"]),
    ("south", "Южный отдел",
     ["RU-KDA", "RU-ROS", "RU-STA", "RU-VGG", "RU-VOR", "RU-BEL", "RU-LIP"]),
    ("ural", "Уральский отдел", ["RU-SVE", "RU-CHE", "RU-TYU"]),
    ("siberia", "Сибирский отдел", ["RU-NVS", "RU-OMS", "RU-KEM", "RU-KYA", "RU-IRK", "RU-PRI"]),
]

MALE_FIRST = ["Алексей", "Андрей", "Дмитрий", "Сергей", "Иван", "Михаил", "Николай", "Павел",
              "Роман", "Евгений", "Владимир", "Олег", "Артём", "Денис", "Максим", "Игорь"]
FEMALE_FIRST = ["Анна", "Елена", "Ольга", "Татьяна", "Наталья", "Мария", "Ирина", "Светлана",
                "Юлия", "Екатерина", "Марина", "Ксения"]
MALE_PATRONYMIC = ["Александрович", "Сергеевич", "Викторович", "Иванович", "Петрович",
                   "Николаевич", "Андреевич", "Юрьевич"]
FEMALE_PATRONYMIC = ["Александровна", "Сергеевна", "Викторовна", "Ивановна", "Петровна",
                     "Николаевна", "Андреевна", "Юрьевна"]
SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов",
            "Михайлов", "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев",
            "Семёнов", "Егоров", "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев",
            "Макаров", "Никитин", "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев",
            "Григорьев", "Романов", "Воробьёв"]


def person(rng: random.Random) -> str:
    if rng.random() < 0.45:
        surname = rng.choice(SURNAMES)
        surname = surname[:-1] + "ва" if surname.endswith("ь") else surname + "а"
        return f"{surname} {rng.choice(FEMALE_FIRST)} {rng.choice(FEMALE_PATRONYMIC)}"
    return f"{rng.choice(SURNAMES)} {rng.choice(MALE_FIRST)} {rng.choice(MALE_PATRONYMIC)}"


class Api:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.http = requests.Session()

    def login(self, username: str, password: str) -> None:
        response = self.http.post(f"{self.base}/api/v1/auth/login",
                                  json={"username": username, "password": password}, timeout=30)
        self.check(response)
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **params):
        return self.check(self.http.get(f"{self.base}{path}", params=params, timeout=30)).json()

    def get_all(self, path: str, **params) -> list:
        """Every item of a cursor-paged list (``{"items", "next_cursor"}``)."""
        items, cursor = [], None
        while True:
            page = self.get(path, limit=500, **params, **({"cursor": cursor} if cursor else {}))
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items

    def post(self, path: str, data: dict):
        return self.check(self.http.post(f"{self.base}{path}", json=data, timeout=30)).json()

    def patch(self, path: str, data: dict):
        return self.check(self.http.patch(f"{self.base}{path}", json=data, timeout=30)).json()

    @staticmethod
    def check(response):
        if response.status_code >= 400:
            raise SystemExit(f"{response.request.method} {response.url}: {response.status_code} "
                             f"{response.text[:500]}")
        return response


def organisation_plan(managers_per_department: int, seed: int = 7):
    """Every department and user of the demo company, deterministic for a seed."""
    rng = random.Random(seed)
    users = [
        dict(username="director", full_name="Корнеев Виктор Павлович", role="director",
             email="director@roof-demo.ru"),
        dict(username="erp.1c", full_name="Обмен с 1С:УТ", role="integration"),
        dict(username="pbx", full_name="АТС (Asterisk, Манго, Zadarma)", role="integration"),
        dict(username="mail.sync", full_name="Синхронизация почты", role="integration"),
    ]
    extension = 100
    for key, _name, _regions in DEPARTMENTS:
        extension += 1
        users.append(dict(username=f"head.{key}", full_name=person(rng), role="sales_head",
                          department=key, extension=str(extension),
                          email=f"head.{key}@roof-demo.ru", mailbox=f"head.{key}@roof-demo.ru"))
        for n in range(1, managers_per_department + 1):
            extension += 1
            users.append(dict(username=f"m.{key}.{n}", full_name=person(rng), role="manager",
                              department=key, extension=str(extension),
                              email=f"m.{key}.{n}@roof-demo.ru",
                              mailbox=f"m.{key}.{n}@roof-demo.ru"))
    return users


def load_organisation(api: Api, progress: Progress, managers_per_department: int) -> int:
    existing_departments = {d["name"]: d for d in api.get("/api/v1/departments")}
    existing_users = {u["username"]
                      for u in api.get_all("/api/v1/users", include_inactive="true")}
    plan = organisation_plan(managers_per_department)
    task = progress.add_task("организация", total=len(DEPARTMENTS) + len(plan))
    department_ids = {}
    created = 0
    for key, name, regions in DEPARTMENTS:
        department = existing_departments.get(name)
        if department is None:
            department = api.post("/api/v1/departments", {"name": name, "regions": regions})
            created += 1
        department_ids[key] = department["id"]
        progress.advance(task)
    heads = {}
    for user in plan:
        if user["username"] not in existing_users:
            data = {k: v for k, v in user.items() if k != "department"}
            data["password"] = DEMO_PASSWORD
            if "department" in user:
                data["department_id"] = department_ids[user["department"]]
            made = api.post("/api/v1/users", data)
            created += 1
            if user["role"] == "sales_head":
                heads[user["department"]] = made["id"]
        progress.advance(task)
    for key, head_id in heads.items():
        api.patch(f"/api/v1/departments/{department_ids[key]}", {"head_user_id": head_id})
    return created


ROOTS = ["Строй", "Металл", "Кровля", "Профиль", "Урал", "Сиб", "Волга", "Техно", "Фасад",
         "Монтаж", "Сталь", "Дом", "Ангар", "Агро", "Север", "Юг", "Центр", "Регион"]
TAILS = ["металл", "снаб", "торг", "комплект", "сервис", "маркет", "строй", "инвест", "пром",
         "холдинг", "ресурс", "групп"]
INDUSTRIES = ["строительство", "дилер", "кровельные работы", "агрохолдинг", "склады и ангары",
              "частное домостроение"]
CITY_CODES = {"center": "495", "northwest": "812", "volga": "843", "south": "861", "ural": "343",
              "siberia": "383"}


def company_inn(rng: random.Random) -> str:
    from stdnum.ru import inn

    body = f"{rng.randint(1, 99):02d}{rng.randint(0, 9999999):07d}"
    return body + inn.calc_company_check_digit(body)


def client_plan(rng: random.Random, department: str, regions: list[str], n: int) -> list[dict]:
    plan = []
    for _ in range(n):
        name = rng.choice(ROOTS) + rng.choice(TAILS)
        if rng.random() < 0.3:
            name += rng.choice([" Плюс", "-Юг", "-Центр", " Групп", " Урал", "-Сервис"])
        inn = company_inn(rng)
        phone = f"+7{CITY_CODES[department]}{rng.randint(1000000, 9999999)}"
        domain = f"{name.lower().replace(' ', '').replace('-', '')}{rng.randint(1, 999)}.ru"
        contact = person(rng)
        plan.append({
            "short_name": f"{rng.choice(['ООО', 'ООО', 'ООО', 'АО'])} «{name}»",
            "inn": inn, "kpp": f"{inn[:4]}01001", "region": rng.choice(regions),
            "phones": [phone], "emails": [f"info@{domain}"], "website": domain,
            "industry": rng.choice(INDUSTRIES),
            "status": rng.choice(["potential", "potential", "active", "active", "dormant"]),
            "source": rng.choice(["звонок", "сайт", "выставка", "рекомендация", "1С"]),
            "contacts": [{"full_name": contact, "position": rng.choice(
                ["директор", "снабженец", "главный инженер", "прораб"]),
                "phones": [f"+79{rng.randint(10, 99)}{rng.randint(1000000, 9999999)}"],
                "emails": [f"{rng.choice(['zakup', 'snab', 'office'])}@{domain}"]}],
        })
    return plan


def load_clients(api: Api, progress: Progress, managers_per_department: int) -> int:
    """Clients with contacts for every manager (entered as that manager) and a pool per
    department (entered by its head); a re-run finds them as the managers' own duplicates."""
    rng = random.Random(11)
    plan = []
    for key, _name, regions in DEPARTMENTS:
        for n in range(1, managers_per_department + 1):
            plan += [(f"m.{key}.{n}", c) for c in client_plan(rng, key, regions, 6)]
        plan += [(f"head.{key}", c) for c in client_plan(rng, key, regions, 10)]
    task = progress.add_task("клиенты", total=len(plan))
    sessions: dict[str, Api] = {}
    created = 0
    for username, client in plan:
        if username not in sessions:
            sessions[username] = Api(api.base)
            sessions[username].login(username, DEMO_PASSWORD)
        response = sessions[username].http.post(f"{api.base}/api/v1/clients", json=client,
                                                timeout=30)
        if response.status_code == 201:
            created += 1
        elif response.status_code not in (200, 409):  # 200/409: already there (re-run)
            Api.check(response)
        progress.advance(task)
    return created


PRODUCTS = ["профнастил С21", "профнастил НС35", "металлочерепица Монтеррей",
            "сэндвич-панели стеновые", "сэндвич-панели кровельные", "водосточная система",
            "доборные элементы"]
LOST_REASONS = ["Купили у конкурента дешевле", "Проект заморожен", "Не прошли по срокам"]


def load_deals(api: Api, progress: Progress, managers_per_department: int) -> int:
    """Deals for the first clients of every manager (entered as that manager), spread over the
    manual stages, a few lost, with a meeting or a call planned; clients that already have a deal
    are skipped, so a re-run creates nothing."""
    managers = [f"m.{key}.{n}" for key, _name, _regions in DEPARTMENTS
                for n in range(1, managers_per_department + 1)]
    task = progress.add_task("сделки", total=len(managers))
    created = 0
    for username in managers:
        # Every random choice is drawn whether or not the deal exists, so a re-run makes the
        # same choices and skips what the first run created.
        rng = random.Random(f"deals:{username}")
        session = Api(api.base)
        session.login(username, DEMO_PASSWORD)
        me = session.get("/api/v1/me")["user_id"]
        clients = session.get("/api/v1/clients", owner_id=me, limit=4)["items"]
        for client in clients[:rng.randint(2, 4)]:
            plan = {"amount": rng.randrange(80_000, 4_000_000, 10_000),
                    "m2": rng.randrange(200, 8000, 50),
                    "products": rng.sample(PRODUCTS, rng.randint(1, 2)),
                    "close_in": rng.randint(5, 75), "exhibition": rng.random() < 0.2,
                    "roll": rng.random(), "lost_reason": rng.choice(LOST_REASONS),
                    "meeting": rng.random() < 0.3, "meeting_in": rng.randint(1, 10),
                    "meeting_hour": rng.choice([10, 14, 16])}
            if session.get("/api/v1/deals", client_id=client["id"], limit=1)["items"]:
                continue
            deal = session.post("/api/v1/deals", {
                "client_id": client["id"], "amount": f"{plan['amount']}.00",
                "volume": {"m2": str(plan["m2"])}, "product_groups": plan["products"],
                "expected_close_date": _days_ahead(plan["close_in"]),
                "notes": "Заявка с выставки «Строительная неделя»" if plan["exhibition"]
                else "", "source": "manual"})["deal"]
            created += 1
            roll = plan["roll"]
            if roll < 0.55:
                session.post(f"/api/v1/deals/{deal['id']}/stage", {"stage": "qualified"})
            if 0.3 < roll < 0.55:
                session.post(f"/api/v1/deals/{deal['id']}/stage", {"stage": "proposal"})
            if roll > 0.93:
                session.post(f"/api/v1/deals/{deal['id']}/stage", {
                    "stage": "lost", "lost_reason": plan["lost_reason"]})
            elif plan["meeting"]:
                session.post("/api/v1/tasks", {
                    "deal_id": deal["id"], "kind": "meeting",
                    "title": f"Встреча: {client['short_name']}",
                    "starts_at": _days_ahead(plan["meeting_in"], hour=plan["meeting_hour"])})
        progress.advance(task)
    return created


def load_erp_documents(api: Api, progress: Progress, managers_per_department: int) -> int:
    """1C's side of the demo: for some open deals, the sale as UT 11 would send it in
    EnterpriseData messages (counterparty, order naming the deal, invoice, shipments, payment) at
    different depths, posted through the 1C exchange endpoint as the integration account — so
    deals stand at every ERP stage. GUIDs and message numbers are derived from the deal, so a
    re-run sends the same messages and the bridge answers "repeat"."""
    from services.erp_bridge.tests import ed_samples as ed  # builders of realistic ED messages

    director = Api(api.base)                  # reads every deal and card (the admin may not)
    director.login("director", DEMO_PASSWORD)
    # Not lost, with a client; the same set on a re-run (won ones stay in it).
    deals = director.get("/api/v1/deals", sort="created", limit=500)["items"]
    chosen = sorted((d for d in deals if d["client_id"] and d["stage"] != "lost"
                     and d["source"] == "manual"), key=lambda d: d["id"])[:60]
    erp = Api(api.base)
    erp.login("erp.1c", DEMO_PASSWORD)
    task = progress.add_task("документы 1С", total=len(chosen))
    number, applied = 0, 0
    for index, deal in enumerate(chosen):
        client = director.get(f"/api/v1/clients/{deal['client_id']}")
        if not client.get("inn"):
            progress.advance(task)
            continue

        def guid(kind, deal=deal):
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"roofcrm-demo:{deal['id']}:{kind}"))

        amount = Decimal(deal["amount"] or "100000.00")
        half = (amount / 2).quantize(Decimal("0.01"))
        when = f"2026-11-{10 + index % 15:02d}T11:00:00"
        who = (guid("counterparty"), client["inn"], client.get("kpp"))
        objects = [
            ed.counterparty_xml(who[0], client["short_name"], client["inn"], client.get("kpp")),
            ed.order_xml(guid("order"), f"ЗК-{index + 1:05d}", when, f"{amount}", *who,
                         deal_id=deal["id"], responsible=None),
        ]
        depth = index % 5                       # 0: ordered ... 4: shipped and paid
        if depth >= 1:
            objects.append(ed.invoice_xml(guid("invoice"), f"СЧ-{index + 1:05d}", when,
                                          f"{amount}", *who, guid("order")))
        if depth >= 2:
            objects.append(ed.shipment_xml(guid("shipment1"), f"РТУ-{index + 1:05d}", when,
                                           f"{half}", *who, guid("order")))
        if depth >= 3:
            objects.append(ed.shipment_xml(guid("shipment2"), f"РТУ-{index + 1:05d}-2", when,
                                           f"{amount - half}", *who, guid("order")))
        if depth >= 4:
            objects.append(ed.payment_xml(guid("payment"), f"ПП-{index + 1:05d}", when,
                                          f"{amount}", *who, rows=[(guid("order"), f"{amount}")]))
        number += 1
        response = erp.http.post(f"{api.base}/api/v1/erp/enterprise-data",
                                 data=ed.ed_message(number, objects),
                                 headers={"Content-Type": "application/xml"}, timeout=30)
        Api.check(response)
        applied += response.json()["outcome"] == "applied"
        progress.advance(task)
    return applied


def _days_ahead(days: int, hour: int | None = None) -> str:
    """A date (or a Moscow time at ``hour``) ``days`` from now, as the API takes it."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    moment = datetime.now(ZoneInfo("Europe/Moscow")) + timedelta(days=days)
    if hour is None:
        return moment.date().isoformat()
    return moment.replace(hour=hour, minute=0, second=0, microsecond=0).isoformat()


def load_logistics(api: Api, progress: Progress, managers_per_department: int) -> int:
    """The transport company: a dispatcher and two drivers with their own logins (roles
    ``dispatcher`` and ``driver``), a hired carrier, our vehicles and one of the carrier's. The 1C
    shipments of the ``erp`` step become transport orders by themselves (logistics consumes
    them); the dispatcher plans them at /logistics/dispatcher."""
    existing_users = {u["username"]: u
                      for u in api.get_all("/api/v1/users", include_inactive="true")}
    people = [("dispatcher", "Логинова Анна Сергеевна", "dispatcher"),
              ("driver.1", "Шевцов Андрей Викторович", "driver"),
              ("driver.2", "Гусев Олег Николаевич", "driver")]
    task = progress.add_task("логистика", total=len(people) + 6)
    created = 0
    for username, full_name, role in people:
        if username not in existing_users:
            existing_users[username] = api.post("/api/v1/users", {
                "username": username, "full_name": full_name, "role": role,
                "password": DEMO_PASSWORD})
            created += 1
        progress.advance(task)
    dispatcher = Api(api.base)
    dispatcher.login("dispatcher", DEMO_PASSWORD)
    carriers = {c["name"]: c for c in dispatcher.get("/api/v1/logistics/carriers")}
    carrier = carriers.get("ТК «Урал-Транзит»") or dispatcher.post(
        "/api/v1/logistics/carriers", {"name": "ТК «Урал-Транзит»", "rate_kind": "per_km",
                                       "rate": "62.00", "phone": "+7 343 300-20-10"})
    created += "ТК «Урал-Транзит»" not in carriers
    progress.advance(task)
    plates = {v["plate"] for v in dispatcher.get("/api/v1/logistics/vehicles",
                                                 include_inactive="true")}
    fleet = [
        {"plate": "А101КР96", "kind": "curtain_sider", "payload_t": "20", "body_length_m": "13.6",
         "volume_m3": "86", "ownership": "own", "per_km_rate": "48.50", "per_hour_rate": "650"},
        {"plate": "В202КР96", "kind": "flatbed", "payload_t": "10", "body_length_m": "8.0",
         "ownership": "own", "per_km_rate": "38.00", "per_hour_rate": "600"},
        {"plate": "Е303КР96", "kind": "crane", "payload_t": "7", "body_length_m": "6.5",
         "ownership": "own", "per_km_rate": "55.00", "per_hour_rate": "900"},
        {"plate": "М404ТТ66", "kind": "curtain_sider", "payload_t": "20",
         "body_length_m": "13.6", "ownership": "carrier", "carrier_id": carrier["id"]},
    ]
    for vehicle in fleet:
        if vehicle["plate"] not in plates:
            dispatcher.post("/api/v1/logistics/vehicles", vehicle)
            created += 1
        progress.advance(task)
    drivers = {d["full_name"] for d in dispatcher.get("/api/v1/logistics/drivers",
                                                      include_inactive="true")}
    for username, phone, licence in (("driver.1", "+7 912 600-11-01", "6612000101"),
                                     ("driver.2", "+7 912 600-11-02", "6612000102")):
        user = existing_users[username]
        if user["full_name"] not in drivers:
            dispatcher.post("/api/v1/logistics/drivers", {
                "full_name": user["full_name"], "phone": phone, "licence": licence,
                "user_id": user["id"]})
            created += 1
    progress.advance(task)
    return created


DEMO_PAY_SCHEME = {
    "position": "manager", "valid_from": "2026-01-01", "name": "Менеджер по продажам, 2026",
    "fixed": "45000.00",
    "percentages": [{"kpi": "payments", "rate": "0.5", "cap": "40000.00"}],
    "weights": [{"kpi": "sales", "weight": "0.7"},
                {"kpi": "payments", "weight": "0.3", "cap_pct": "150"}],
    "bonus": {"base_kpi": "sales", "mode": "whole", "cap": "120000.00",
              "tiers": [{"from_pct": "80", "rate": "1"}, {"from_pct": "100", "rate": "2"},
                        {"from_pct": "120", "rate": "2.5"}]},
    "total_cap": "150000.00", "what_if_kpi": "sales"}


def load_payroll(api: Api, progress: Progress, managers_per_department: int) -> int:
    """The managers' pay scheme (as the admin) and a plan for every manager for the current and
    the previous month (as the director), so the desk KPI widgets show plan against fact."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    created = 0
    if not api.get("/api/v1/payroll/schemes", position="manager"):
        api.post("/api/v1/payroll/schemes", DEMO_PAY_SCHEME)
        created += 1
    director = Api(api.base)
    director.login("director", DEMO_PASSWORD)
    now = datetime.now(ZoneInfo("Europe/Moscow"))
    current = f"{now.year}-{now.month:02d}"
    previous = f"{now.year - 1}-12" if now.month == 1 else f"{now.year}-{now.month - 1:02d}"
    rng = random.Random(11)
    for month in (previous, current):
        overview = director.get("/api/v1/payroll/plans", month=month)
        missing = [m for m in overview["managers"] if m["plan"] is None]
        task = progress.add_task(f"планы {month}", total=len(missing))
        for manager in missing:
            sales = rng.randrange(8, 30) * 100_000
            plan = {"sales": f"{sales}.00", "shipments": f"{sales // 60_000}",
                    "payments": f"{int(sales * 0.9)}.00", "new_clients": rng.randrange(2, 8),
                    "calls": rng.randrange(150, 400), "meetings": rng.randrange(4, 16)}
            Api.check(director.http.put(
                f"{api.base}/api/v1/payroll/plans/{month}/{manager['user_id']}", json=plan,
                timeout=30))
            created += 1
            progress.advance(task)
    return created


DEMO_SITE = "https://roof-demo.ru"
DEMO_CONSENT_TEXTS = {
    "processing": "Я согласен(на) на обработку моих персональных данных (имя, телефон, e-mail) "
                  "ООО «Кровля-Демо» для ответа на заявку, в соответствии с 152-ФЗ.",
    "marketing_email": "Я согласен(на) получать от ООО «Кровля-Демо» письма о новинках и "
                       "акциях; отписаться можно по ссылке в каждом письме.",
}
DEMO_CONSENTS = [("zakupki@krovlya-partner.ru", "marketing_email"),
                 ("zakupki@krovlya-partner.ru", "processing"),
                 ("snab@metallobaza-demo.ru", "marketing_email")]
DEMO_CAMPAIGN = "Демо: новая металлочерепица для активных клиентов"
DEMO_SEGMENT = "Демо: активные клиенты отдела"


def _listed(api: Api, path: str, **params) -> list:
    """A list endpoint's items, whether it answers a plain list or cursor pages."""
    first = api.get(path, **params)
    return api.get_all(path, **params) if isinstance(first, dict) else first


def load_lead_intake(api: Api, progress: Progress, managers_per_department: int) -> int:
    """Lead intake and marketing (issue 13): the consent texts, a web form per department (the
    ural one with round-robin distribution on), a few recorded consents, and a draft e-mail
    campaign of the ural head over a saved segment of active clients. A re-run finds each by its
    name (texts by version, consents by e-mail and purpose) and creates nothing."""
    task = progress.add_task("заявки и маркетинг", total=len(DEPARTMENTS) + 6)
    created = 0
    texts = {}
    for purpose, text in DEMO_CONSENT_TEXTS.items():
        found = [t for t in _listed(api, "/api/v1/consent-texts", purpose=purpose)
                 if t["version"] == "demo-1"]
        texts[purpose] = found[0] if found else api.post("/api/v1/consent-texts", {
            "purpose": purpose, "version": "demo-1", "text": text})
        created += not found
    progress.advance(task)
    departments = {d["name"]: d for d in api.get("/api/v1/departments")}
    forms = {f["name"] for f in _listed(api, "/api/v1/lead-forms")}
    for _key, name, regions in DEPARTMENTS:
        title = f"Заявка на расчёт кровли — {name}"
        if title not in forms:
            api.post("/api/v1/lead-forms", {
                "name": title, "department_id": departments[name]["id"], "region": regions[0],
                "allowed_origins": [DEMO_SITE],
                "consent_text_version_id": texts["processing"]["id"]})
            created += 1
        progress.advance(task)
    ural = departments[next(name for key, name, _ in DEPARTMENTS if key == "ural")]["id"]
    path = f"/api/v1/departments/{ural}/lead-distribution"
    if not api.get(path)["enabled"]:
        Api.check(api.http.put(f"{api.base}{path}", json={
            "enabled": True, "mode": "round_robin", "daily_cap": 15}, timeout=30))
        created += 1
    progress.advance(task)
    for email, purpose in DEMO_CONSENTS:
        history = _listed(api, "/api/v1/consents", email=email)
        if not any(h["purpose"] == purpose and h["granted"] for h in history):
            api.post("/api/v1/consents", {"email": email, "purpose": purpose,
                                          "text_version_id": texts[purpose]["id"],
                                          "source": "manual"})
            created += 1
    progress.advance(task)
    head = Api(api.base)
    head.login("head.ural", DEMO_PASSWORD)
    segments = {s["name"]: s for s in _listed(head, "/api/v1/segments")}
    segment = segments.get(DEMO_SEGMENT)
    if segment is None:
        segment = head.post("/api/v1/segments", {
            "name": DEMO_SEGMENT, "filter": {"field": "status", "op": "eq", "value": "active"}})
        created += 1
    progress.advance(task)
    if not any(c["name"] == DEMO_CAMPAIGN for c in head.get_all("/api/v1/campaigns")):
        head.post("/api/v1/marketing/campaigns", {
            "name": DEMO_CAMPAIGN, "goal": "new_product", "channels": ["email"],
            "segment_id": segment["id"], "budget": "50000.00", "utm_campaign": "demo-tile-2026",
            "email_subject": "Новая металлочерепица для {{ client_name }}",
            "email_body": "Здравствуйте, {{ contact_name }}!\n\nВ продаже новая металлочерепица "
                          "с гарантией 25 лет. Пришлём расчёт по вашему объекту."})
        created += 1
    progress.advance(task)
    return created


STEPS = [("organisation", load_organisation), ("clients", load_clients), ("deals", load_deals),
         ("erp", load_erp_documents), ("logistics", load_logistics), ("payroll", load_payroll),
         ("lead_intake", load_lead_intake)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="load the RoofCRM demo data set")
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--managers-per-department", type=int, default=16)
    args = parser.parse_args(argv)
    api = Api(args.gateway)
    api.login(env("CRM_ADMIN_USERNAME", "admin"), env("CRM_ADMIN_PASSWORD", "admin12345"))
    total = 0
    with Progress() as progress:
        for _name, step in STEPS:
            total += step(api, progress, args.managers_per_department)
    print("demo data already loaded" if total == 0 else f"demo data: {total} records created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
