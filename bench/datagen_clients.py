"""Realistic Russian client base for the clients service's benchmarks, loaded fast with COPY.

    gen = ClientGenerator(seed=1, org=Org.generate(seed=1))
    stats = load(url, 1_000_000, gen)          # TRUNCATE + COPY FREEZE + rebuilt indexes + ANALYZE

Company names are built from the roots, adjectives and suffixes real Russian firms use
("Стройметалл", "Уралпрофиль", "Кровля-Сервис", "ТехноСтрой Плюс", "СибМеталлТорг", "Уральская
строительная компания", "ИП Иванов Сергей Петрович"), so a trigram search finds realistic
neighbours (hundreds of "Стройметалл"s at 1M, as in the real registry). INNs, OGRNs carry correct
check digits, KPPs are well-formed, phones are valid E.164 numbers (regional landlines and +79…
mobiles), e-mails lower-case. ``name_key`` and the identifiers rows come from the service's own
functions (``domain.normalize.name_key``, ``domain.card.identifiers_of``), so the database holds
exactly what ``create_client`` would have written; ``selfcheck`` re-validates a sample through
``normalise_client``.

Loading: generation runs in this process while a loader thread COPYs the previous chunk (the
PostgreSQL backend parses it on the other core). Everything happens in one transaction: TRUNCATE,
drop the indexes and constraints of the three bulk tables, COPY ... FREEZE in chunks, re-create the
very same indexes and constraints (definitions read from the catalog beforehand), commit, then
VACUUM (ANALYZE).
"""

from __future__ import annotations

import io
import itertools
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache

import psycopg2
import sqlalchemy as sa
from psycopg2 import sql

from services.clients.domain.card import identifiers_of, normalise_client
from services.clients.domain.normalize import name_key

NULL = "\\N"   # COPY text format

# -- vocabulary ------------------------------------------------------------------------------------

ROOTS = (
    "Строй Металл Урал Сиб Техно Пром Агро Энерго Авто Транс Газ Нефть Хим Лес Дор Мост Тепло "
    "Электро Гидро Аква Кров Фасад Бетон Арм Профиль Снаб Торг Сервис Комплект Монтаж Проект "
    "Инвест Капитал Альфа Вектор Гранит Кварц Полимер Пласт Хлеб Молоко Мясо Фарм Мед Эко Био "
    "Инфо Софт Связь Телеком Логистик Экспресс Карго Стиль Мебель Дом Град Регион Волга Кама Дон "
    "Нева Байкал Алтай Кубань Север Юг Восток Запад Центр Евро Рус Мега Спец Маш Станко Инструмент "
    "Кабель Провод Труба Лифт Окна Двери Стекло Керамика Кирпич Цемент Песок Щебень Асфальт Бур "
    "Гео "
    "Мастер Ресурс Актив Форт Титан Никель Медь Сталь Чугун Лайн Тех Крас Тюмень Омск Томск Пермь "
    "Казань Вятка Ока Енисей Амур Ямал Печора Кедр Сосна Берёза Липа Дуб Рубин Изумруд Сапфир "
    "Янтарь "
    "Малахит Орион Сириус Вега Атлант Олимп Гермес Феникс Пегас Меридиан Горизонт Зенит Арсенал "
    "Бастион Кровля Изол Терм Вент Климат Свет Маркет Опт Снабженец Технолог Механик Завод Комбинат"
).split()
# Roots that read as a whole word on their own ("Вектор", "Меридиан").
WORD_ROOTS = (
    "Вектор Гранит Кварц Альфа Атлант Олимп Гермес Феникс Пегас Меридиан Горизонт Зенит Арсенал "
    "Бастион Орион Сириус Вега Рубин Изумруд Сапфир Янтарь Малахит Титан Форт Кедр Байкал Алтай "
    "Енисей Амур Ямал Печора Кубань Волга Кама Нева Ока Вятка Спектр Магистраль Импульс Прогресс "
    "Стандарт Партнёр Гарант Лидер Профи Эталон Контур Диалог Ресурс Актив Мастер Интеграл Квадрат"
).split()
DASH_SUFFIXES = (
    "Сервис Групп Трейд Холдинг Снаб Комплект Центр Плюс М Про Инвест Урал Сибирь Регион Строй "
    "Торг Эксперт Профи Маркет Логистик Партнёр Альянс Систем Технолоджи НН СПб Юг 2000 96 74 Опт "
    "Монтаж Проект Инжиниринг Снабжение"
).split()
SPACE_TAILS = (
    "Плюс Групп Трейд Про Лайн Сервис Эксперт Инжиниринг Девелопмент Консалт Логистик Маркет "
    "Холдинг Индустрия Технологии Решения Системы Комплект"
).split()
NUM_TAILS = ("96", "66", "74", "59", "77", "78", "2000", "21 век", "НН", "М", "Урал", "Сибирь")
# (stem, ending type): "k" = -ий/-ая/-ое, "h" = -ый/-ая/-ое, "o" = -ой/-ая/-ое.
REGION_ADJ = [(s, "k") for s in (
    "Уральск Сибирск Волжск Камск Донск Невск Московск Петербургск Казанск Пермск Тюменск Омск "
    "Челябинск Екатеринбургск Новосибирск Самарск Ростовск Кубанск Нижегородск Алтайск Байкальск "
    "Балтийск Приволжск Уфимск Башкирск Татарск Курганск Оренбургск Томск").split()]
REGION_ADJ += [(s, "h") for s in
               "Северн Южн Восточн Западн Центральн Дальневосточн Северо-Западн".split()]
GENERIC_ADJ = [(s, "h") for s in (
    "Перв Нов Главн Объединённ Национальн Межрегиональн Региональн Федеральн Промышленн "
    "Строительн Торгов Инженерн Машиностроительн Транспортн Топливн Аграрн Кровельн Фасадн Трубн "
    "Кабельн Монтажн Производственн Инвестиционн Сервисн Металлообрабатывающ Современн Надёжн "
    "Электромонтажн Сварочн Отделочн Бетонн Лакокрасочн Деревообрабатывающ").split()]
GENERIC_ADJ += [(s, "k") for s in (
    "Русск Металлургическ Энергетическ Логистическ Химическ Медицинск Снабженческ Техническ "
    "Технологическ Строительно-монтажн Фармацевтическ").split()]
GENERIC_ADJ += [(s, "h") for s in ("Дорожн",)]
GENERIC_ADJ += [(s, "o") for s in "Лесн Пищев Делов Мостов Теплов".split()]
NOUNS = (
    [(n, "m") for n in ("завод комбинат холдинг альянс союз двор центр трест концерн "
                        "консорциум дом терминал склад").split()]
    + [(n, "f") for n in ("компания группа база фабрика корпорация мануфактура мастерская "
                          "артель сеть служба").split()]
    + [(n, "n") for n in "объединение предприятие агентство бюро управление".split()]
)
PREFIX_NOUNS = ("Торговый дом", "ТД", "Завод", "Компания", "Группа компаний", "ГК",
                "Производственная компания", "Фабрика", "Комбинат", "Торговая компания",
                "Строительная компания", "Научно-производственное предприятие", "НПП", "СК")

MALE_SURNAMES = (
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов "
    "Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев Макаров "
    "Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв Сергеев Кузьмин "
    "Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков Сорокин Виноградов "
    "Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров Давыдов Беляев "
    "Герасимов Богданов Осипов Сидоров Матвеев Титов Марков Миронов Крылов Куликов Карпов Власов "
    "Мельников Денисов Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин Чернов "
    "Абрамов Мартынов Ефимов Федотов Щербаков Назаров Калинин Исаев Чернышёв Быков Маслов Родионов "
    "Коновалов Лазарев Воронин Климов Филатов Пономарёв Голубев Кудрявцев Прохоров Наумов Потапов "
    "Журавлёв Овчинников Трофимов Леонов Соболев Ермаков Колесников Гончаров Емельянов Никифоров "
    "Грачёв Котов Гришин Ефремов Архипов Громов Кириллов Малышев Панов Моисеев Румянцев Акимов "
    "Кондратьев Бирюков Горбунов Анисимов Ерёмин Тихомиров Галкин Лукьянов Михеев Скворцов Юдин "
    "Белоусов Нестеров Симонов Прокофьев Харитонов Князев Цветков Левин Митрофанов Воронов Аксёнов "
    "Мальцев Логинов Горшков Савин Краснов Майоров Демидов Елисеев Рыбаков Сафонов Плотников Дёмин "
    "Хохлов Жданов Шубин Ширяев Лаптев Бобров Кулагин Блинов Шестаков Успенский Покровский "
    "Вознесенский Троицкий Зарецкий Бельский Шевчук Коваленко Бондаренко Ткаченко Кравченко "
    "Мельник Гуревич Шапиро Ахметов Галиев Хабибуллин Сафин Валиев Гарипов Зиннатуллин"
).split()
MALE_NAMES = (
    "Александр Сергей Дмитрий Андрей Алексей Максим Евгений Иван Михаил Артём Николай Владимир "
    "Павел Роман Денис Олег Игорь Константин Виктор Юрий Антон Илья Кирилл Вадим Василий Геннадий "
    "Анатолий Борис Григорий Пётр Станислав Руслан Тимур Фёдор Егор Леонид Валерий Ярослав "
    "Вячеслав Степан Рустам Ринат"
).split()
FEMALE_NAMES = (
    "Елена Ольга Наталья Татьяна Ирина Светлана Анна Мария Екатерина Юлия Марина Анастасия "
    "Людмила Галина Валентина Надежда Оксана Виктория Евгения Дарья Ксения Алина Полина Вера "
    "Любовь Лариса Алла Нина Жанна Кристина Гульнара Эльвира"
).split()
PATRONYMICS = (
    "Александрович Сергеевич Дмитриевич Андреевич Алексеевич Евгеньевич Иванович Михайлович "
    "Николаевич Владимирович Павлович Викторович Юрьевич Олегович Игоревич Васильевич "
    "Анатольевич Борисович Григорьевич Петрович Геннадьевич Валерьевич Леонидович "
    "Константинович Романович Фёдорович Степанович Вячеславович Станиславович Ильич Рашидович"
).split()
POSITIONS = ("Генеральный директор", "Директор", "Главный инженер", "Главный бухгалтер",
             "Бухгалтер", "Менеджер по закупкам", "Начальник отдела снабжения", "Снабженец",
             "Коммерческий директор", "Прораб", "Технолог", "Юрист", "Офис-менеджер", None)
INDUSTRIES = ("Металлопрокат", "Строительство", "Кровельные материалы", "Оптовая торговля",
              "Машиностроение", "Логистика", "Пищевая промышленность", "Энергетика", "ИТ",
              "Сельское хозяйство", "Химическая промышленность", "Медицина", "Нефть и газ",
              "Деревообработка", None)
SEGMENTS = ("Крупный опт", "Мелкий опт", "Розница", "Застройщики", "Монтажники",
            "Производство", "Госзаказчики", None)
SOURCES = ("Сайт", "Холодный звонок", "Рекомендация", "Выставка", "Тендер", "Входящий звонок",
           "1С", "Импорт", None)
STREETS = ("Ленина", "Мира", "Советская", "Гагарина", "Кирова", "Пушкина", "Октябрьская",
           "Садовая", "Молодёжная", "Заводская", "Промышленная", "Строителей", "Лесная",
           "Первомайская", "Малышева", "Луначарского", "Карла Маркса", "Победы", "Чкалова")
E_PREFIXES = ("info", "sales", "office", "zakaz", "snab", "mail", "buh", "opt", "director")
FREE_MAIL = ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "list.ru", "inbox.ru", "ya.ru")

# INN region code, ISO 3166-2, city, phone area codes, weight.
REGIONS = (
    ("77", "RU-MOW", "Москва", ("495", "499"), 24),
    ("50", "RU-MOS", "Подольск", ("496", "498"), 7),
    ("78", "RU-SPE", "Санкт-Петербург", ("812",), 10),
    ("66", "RU-SVE", "Екатеринбург", ("343",), 7),
    ("74", "RU-CHE", "Челябинск", ("351",), 4),
    ("59", "RU-PER", "Пермь", ("342",), 3),
    ("54", "RU-NVS", "Новосибирск", ("383",), 4),
    ("16", "RU-TA", "Казань", ("843",), 4),
    ("63", "RU-SAM", "Самара", ("846",), 3),
    ("61", "RU-ROS", "Ростов-на-Дону", ("863",), 4),
    ("23", "RU-KDA", "Краснодар", ("861",), 5),
    ("52", "RU-NIZ", "Нижний Новгород", ("831",), 3),
    ("02", "RU-BA", "Уфа", ("347",), 3),
    ("72", "RU-TYU", "Тюмень", ("3452",), 2),
    ("24", "RU-KYA", "Красноярск", ("391",), 2),
    ("55", "RU-OMS", "Омск", ("3812",), 2),
    ("38", "RU-IRK", "Иркутск", ("3952",), 2),
    ("36", "RU-VOR", "Воронеж", ("473",), 2),
    ("64", "RU-SAR", "Саратов", ("8452",), 2),
    ("42", "RU-KEM", "Кемерово", ("3842",), 2),
    ("86", "RU-KHM", "Сургут", ("3462",), 2),
    ("45", "RU-KGN", "Курган", ("3522",), 1),
    ("56", "RU-ORE", "Оренбург", ("3532",), 1),
)
REGION_CUM = list(itertools.accumulate(r[4] for r in REGIONS))
MOBILE_CODES = [str(c) for c in range(900, 1000) if c != 930]   # +7930 0… is not allocated
# legal form abbreviation, spelled out, weight, sole trader?
LEGAL_FORMS = (
    ("ООО", "Общество с ограниченной ответственностью", 66, False),
    ("АО", "Акционерное общество", 8, False),
    ("ЗАО", "Закрытое акционерное общество", 2, False),
    ("ПАО", "Публичное акционерное общество", 1, False),
    ("ИП", "Индивидуальный предприниматель", 21, True),
    ("МУП", "Муниципальное унитарное предприятие", 1, False),
    ("ГУП", "Государственное унитарное предприятие", 1, False),
)
FORM_CUM = list(itertools.accumulate(f[2] for f in LEGAL_FORMS))
SPELLED = {f[0]: f[1] for f in LEGAL_FORMS}
STATUSES = ("potential", "active", "dormant", "lost")
STATUS_CUM = list(itertools.accumulate((40, 35, 20, 5)))
CONTACTS_CUM = list(itertools.accumulate((20, 55, 20, 5)))

TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch",
    "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya", " ": "-", "«": "", "»": "",
    '"': "",
})

# Keyboard neighbours (ЙЦУКЕН) for typos.
KEYBOARD_ROWS = ("йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю")
NEIGHBOURS = {}
for _row in KEYBOARD_ROWS:
    for _i, _ch in enumerate(_row):
        NEIGHBOURS[_ch] = _row[max(0, _i - 1):_i] + _row[_i + 1:_i + 2]


def translit(text: str) -> str:
    return text.lower().translate(TRANSLIT)


# -- identifiers with check digits -----------------------------------------------------------------

def inn10(first9: str) -> str:
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    check = sum(w * int(d) for w, d in zip(weights, first9, strict=True)) % 11 % 10
    return first9 + str(check)


def inn12(first10: str) -> str:
    w11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    w12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    c11 = str(sum(w * int(d) for w, d in zip(w11, first10, strict=True)) % 11 % 10)
    c12 = str(sum(w * int(d) for w, d in zip(w12, first10 + c11, strict=True)) % 11 % 10)
    return first10 + c11 + c12


def ogrn13(first12: str) -> str:
    return first12 + str(int(first12) % 11 % 10)


def ogrnip15(first14: str) -> str | None:
    """None when the remainder is 10-12: the registry's rule takes its last digit, but
    python-stdnum (what the service validates with) rejects those, so they are not generated."""
    check = int(first14) % 13
    return first14 + str(check) if check < 10 else None


def adjective(stem: str, kind: str, gender: str) -> str:
    endings = {"k": {"m": "ий", "f": "ая", "n": "ое"}, "h": {"m": "ый", "f": "ая", "n": "ое"},
               "o": {"m": "ой", "f": "ая", "n": "ое"}}
    if stem.endswith("щ"):       # "Металлообрабатывающ" + ий/ая/ее
        return stem + {"m": "ий", "f": "ая", "n": "ее"}[gender]
    return stem + endings[kind][gender]


# -- the organisation: departments and managers (replicas the service keeps) -----------------------

@dataclass
class Org:
    departments: list[dict]
    staff: list[dict]
    managers_by_region: dict[str, list[dict]]

    @classmethod
    def generate(cls, seed: int = 1, managers_per_department: int = 8) -> Org:
        rng = random.Random(seed)
        groups = {"Московский": ("RU-MOW", "RU-MOS"), "Северо-Западный": ("RU-SPE",),
                  "Уральский": ("RU-SVE", "RU-CHE", "RU-PER", "RU-KGN", "RU-ORE"),
                  "Сибирский": ("RU-NVS", "RU-KYA", "RU-OMS", "RU-IRK", "RU-KEM"),
                  "Приволжский": ("RU-TA", "RU-SAM", "RU-NIZ", "RU-BA", "RU-SAR"),
                  "Южный": ("RU-ROS", "RU-KDA", "RU-VOR"), "Тюменский": ("RU-TYU", "RU-KHM")}
        departments, staff, by_region = [], [], {}
        for name, regions in groups.items():
            dept_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            people = []
            for n in range(managers_per_department + 1):
                male = rng.random() < 0.6
                person = {"user_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                          "full_name": person_name(rng, male),
                          "role": "sales_head" if n == 0 else "manager",
                          "department_id": dept_id, "active": True}
                people.append(person)
            staff.extend(people)
            departments.append({"department_id": dept_id, "name": f"{name} отдел продаж",
                                "head_user_id": people[0]["user_id"], "regions": list(regions)})
            for region in regions:
                by_region[region] = people[1:]
        staff.append({"user_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                      "full_name": person_name(rng, True), "role": "director",
                      "department_id": None, "active": True})
        return cls(departments, staff, by_region)


def person_name(rng: random.Random, male: bool) -> str:
    surname = rng.choice(MALE_SURNAMES)
    patronymic = rng.choice(PATRONYMICS)
    if male:
        return f"{surname} {rng.choice(MALE_NAMES)} {patronymic}"
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        surname += "а"
    elif surname.endswith("ский"):
        surname = surname[:-4] + "ская"
    elif surname.endswith("цкий"):
        surname = surname[:-4] + "цкая"
    patronymic = "Ильинична" if patronymic == "Ильич" else patronymic[:-2] + "на"
    return f"{surname} {rng.choice(FEMALE_NAMES)} {patronymic}"


# -- companies -------------------------------------------------------------------------------------

def compound(rng: random.Random, parts: int = 2) -> str:
    """"Стройметалл", "Уралпрофиль" (two roots) or "СибМеталлТорг" (camel case, three)."""
    roots = [rng.choice(ROOTS) for _ in range(parts)]
    while len(set(roots)) < parts:
        roots = [rng.choice(ROOTS) for _ in range(parts)]
    if parts == 2 and rng.random() < 0.8:
        return roots[0] + roots[1].lower()
    return "".join(roots)


def company_name(rng: random.Random) -> str:
    """The bare name of a company (no legal form)."""
    r = rng.random()
    if r < 0.30:
        name = compound(rng)
    elif r < 0.40:
        name = compound(rng, 3)
    elif r < 0.55:
        name = f"{compound(rng) if rng.random() < 0.6 else rng.choice(ROOTS)}-" \
               f"{rng.choice(DASH_SUFFIXES)}"
    elif r < 0.65:
        base = compound(rng) if rng.random() < 0.7 else rng.choice(WORD_ROOTS)
        name = f"{base} {rng.choice(SPACE_TAILS)}"
    elif r < 0.80:
        noun, gender = rng.choice(NOUNS)
        words = []
        if rng.random() < 0.7:
            words.append(adjective(*rng.choice(REGION_ADJ), gender))
        words.append(adjective(*rng.choice(GENERIC_ADJ), gender))
        words.append(noun)
        name = " ".join(words)
        name = name[0].upper() + name[1:].lower()
    elif r < 0.92:
        base = compound(rng) if rng.random() < 0.7 else rng.choice(WORD_ROOTS)
        name = f"{rng.choice(PREFIX_NOUNS)} {base}"
    else:
        name = rng.choice(WORD_ROOTS)
    if rng.random() < 0.08:
        name = f"{name}{rng.choice(('-', ' '))}{rng.choice(NUM_TAILS)}"
    return name


def short_name_for(rng: random.Random, form: str, bare: str) -> str:
    """How the short name is written in the base: mostly ООО «X», sometimes otherwise."""
    if form == "ИП":
        return f"ИП {bare}"
    r = rng.random()
    if r < 0.80:
        return f"{form} «{bare}»"
    if r < 0.90:
        return f'{form} "{bare}"'
    if r < 0.96:
        return f"{bare}, {form}"
    return bare


@lru_cache(maxsize=65_536)
def key_of(short_name: str) -> str:
    # As normalise_client does it.
    return name_key(short_name) or short_name.lower()


@dataclass
class Client:
    id: uuid.UUID
    short_name: str
    full_name: str
    legal_form: str
    inn: str
    kpp: str | None
    ogrn: str
    region: str
    city: str
    phones: list[str]
    emails: list[str]
    website: str | None
    bare: str
    contacts: list[dict] = field(default_factory=list)
    owner_id: uuid.UUID | None = None
    department_id: uuid.UUID | None = None

    @property
    def name_key(self) -> str:
        return key_of(self.short_name)


class ClientGenerator:
    """Deterministic (for a seed) stream of clients; ``client(i)`` for i = 0, 1, 2, ..."""

    def __init__(self, seed: int, org: Org):
        self.rng = random.Random(seed)
        self.org = org
        self.legal_counter = {r[0]: 0 for r in REGIONS}
        self.person_counter = {r[0]: 0 for r in REGIONS}
        self.dept_by_region = {}
        for dept in org.departments:
            for region in dept["regions"]:
                self.dept_by_region[region] = dept["department_id"]
        self.last_parent: Client | None = None
        self.now = time.time()

    # identifiers
    def new_inn(self, rr: str, personal: bool, fresh: bool = False) -> str:
        """A unique INN of region ``rr``: a counter mapped bijectively onto (inspection, serial).
        ``fresh``: from a range the base never uses (for would-be new clients)."""
        counters = self.person_counter if personal else self.legal_counter
        c = counters[rr] + (9_000_000 if fresh else 0)
        if not fresh:
            counters[rr] += 1
        inspection = 1 + c % 99
        if personal:
            serial = (c // 99 * 7919 + 12345) % 1_000_000
            return inn12(f"{rr}{inspection:02d}{serial:06d}")
        serial = (c // 99 * 7919 + 12345) % 100_000
        return inn10(f"{rr}{inspection:02d}{serial:05d}")

    def ogrn_for(self, inn: str, personal: bool) -> str:
        rng = self.rng
        year = f"{rng.randint(2, 24):02d}"
        while personal:
            if number := ogrnip15(f"3{year}{inn[:2]}{rng.randrange(10**9):09d}"):
                return number
        return ogrn13(f"1{year}{inn[:4]}{rng.randrange(10**5):05d}")

    def mobile(self) -> str:
        return f"+7{self.rng.choice(MOBILE_CODES)}{self.rng.randrange(10**7):07d}"

    def landline(self, codes) -> str:
        code = self.rng.choice(codes)
        rest = 10 - len(code)
        return f"+7{code}{self.rng.randrange(2 * 10 ** (rest - 1), 10 ** rest):0{rest}d}"

    def contact(self, domain: str | None) -> dict:
        rng = self.rng
        male = rng.random() < 0.55
        full = person_name(rng, male)
        surname, first, _ = full.split()
        phones = [self.mobile()] if rng.random() < 0.9 else []
        emails = []
        if rng.random() < 0.5:
            local = f"{translit(first)[0]}.{translit(surname)}"
            if domain and rng.random() < 0.7:
                emails.append(f"{local}@{domain}")
            else:
                emails.append(f"{local}{rng.randrange(100)}@{rng.choice(FREE_MAIL)}")
        return {"id": uuid.uuid4(), "full_name": full, "position": rng.choice(POSITIONS),
                "phones": phones, "emails": emails}

    def client(self) -> Client:
        rng = self.rng
        parent = self.last_parent
        if parent is not None and rng.random() < 0.02:      # a branch: same INN, another KPP
            region = rng.choices(REGIONS, cum_weights=REGION_CUM)[0]
            inn, form, personal = parent.inn, parent.legal_form, False
            bare = f"{parent.bare} филиал {region[2]}"
            kpp = f"{region[0]}{rng.randint(1, 99):02d}43{rng.randint(1, 9):03d}"
            ogrn = parent.ogrn
        else:
            region = rng.choices(REGIONS, cum_weights=REGION_CUM)[0]
            form, _, _, personal = rng.choices(LEGAL_FORMS, cum_weights=FORM_CUM)[0]
            inn = self.new_inn(region[0], personal)
            bare = person_name(rng, rng.random() < 0.65) if personal else company_name(rng)
            kpp = None if personal else f"{inn[:4]}01001"
            ogrn = self.ogrn_for(inn, personal)
        spelled = SPELLED[form]
        short = short_name_for(rng, form, bare)
        full = f"{spelled} {bare}" if personal else f"{spelled} «{bare}»"
        domain = None
        if not personal:
            tail = rng.choice(("", "", str(rng.randrange(1000)), region[0], "-" + region[0]))
            domain = f"{translit(bare.split(' филиал')[0])[:28].strip('-')}{tail}.ru"
        elif rng.random() < 0.1:
            domain = f"{translit(bare.split()[0])}-{rng.randrange(100)}.ru"
        phones = [self.landline(region[3])] if not personal else []
        if personal or rng.random() < 0.3:
            phones.append(self.mobile())
        emails = []
        if domain and rng.random() < 0.85:
            emails.append(f"{rng.choice(E_PREFIXES)}@{domain}")
        elif personal and rng.random() < 0.6:
            emails.append(f"{translit(bare.split()[0])}{rng.randrange(1000)}@"
                          f"{rng.choice(FREE_MAIL)}")
        n_contacts = rng.choices((0, 1, 2, 3), cum_weights=CONTACTS_CUM)[0]
        contacts = [self.contact(domain) for _ in range(n_contacts)]
        managers = self.org.managers_by_region[region[1]]
        owner = rng.choice(managers)["user_id"] if rng.random() < 0.85 else None
        client = Client(id=uuid.uuid4(), short_name=short, full_name=full, legal_form=form,
                        inn=inn, kpp=kpp, ogrn=ogrn, region=region[1], city=region[2],
                        phones=phones, emails=emails,
                        website=domain if domain and rng.random() < 0.5 else None, bare=bare,
                        contacts=contacts, owner_id=owner,
                        department_id=self.dept_by_region[region[1]])
        if not personal and kpp and kpp[4:6] == "01":
            self.last_parent = client
        return client

    # -- COPY lines ------------------------------------------------------------------------------
    def stamp(self, seconds_ago: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(self.now - seconds_ago))

    def lines(self, c: Client) -> tuple[str, list[str], list[str]]:
        rng = self.rng
        day = 86400.0
        created = rng.random() * 5 * 365 * day
        updated = created * rng.random()
        created_at, updated_at = self.stamp(created), self.stamp(updated)
        status = rng.choices(STATUSES, cum_weights=STATUS_CUM)[0]
        touched = self.stamp(rng.random() * min(created, 90 * day))
        invoice = self.stamp(rng.random() * min(created, 900 * day)) \
            if status in ("active", "dormant") else NULL
        address = (f'[{{"kind": "legal", "text": "{c.city}, ул. {rng.choice(STREETS)}, '
                   f'д. {rng.randrange(1, 151)}"}}]')
        owner = str(c.owner_id) if c.owner_id else NULL
        cid = str(c.id)
        client_line = "\t".join((
            cid, c.short_name, c.full_name, c.legal_form, c.inn, c.kpp or NULL, c.ogrn,
            c.region, address, "{" + ",".join(c.phones) + "}", "{" + ",".join(c.emails) + "}",
            c.website or NULL, rng.choice(INDUSTRIES) or NULL, rng.choice(SEGMENTS) or NULL,
            status, rng.choice(SOURCES) or NULL, owner, str(c.department_id),
            created_at if c.owner_id else NULL, touched,
            touched if c.owner_id else NULL, invoice, c.name_key, created_at, owner,
            updated_at, owner)) + "\n"
        contact_lines = []
        for k in c.contacts:
            contact_lines.append("\t".join((
                str(k["id"]), cid, k["full_name"], k["position"] or NULL,
                "{" + ",".join(k["phones"]) + "}", "{" + ",".join(k["emails"]) + "}", "{}",
                NULL, created_at, owner, updated_at, owner)) + "\n")
        # What create_client writes: store.replace_identifiers(identifiers_of(card, contacts)).
        card = {"inn": c.inn, "kpp": c.kpp, "phones": c.phones, "emails": c.emails}
        unique = {(kind, value): contact_id
                  for kind, value, contact_id in identifiers_of(card, c.contacts)}
        ident_lines = [f"{kind}\t{value}\t{cid}\t{contact_id or NULL}\n"
                       for (kind, value), contact_id in unique.items()]
        return client_line, contact_lines, ident_lines


CLIENT_COLUMNS = ("id", "short_name", "full_name", "legal_form", "inn", "kpp", "ogrn", "region",
                  "addresses", "phones", "emails", "website", "industry", "segment", "status",
                  "source", "owner_id", "department_id", "owned_since", "last_interaction_at",
                  "last_owner_interaction_at", "last_invoice_at", "name_key", "created_at",
                  "created_by", "updated_at", "updated_by")
CONTACT_COLUMNS = ("id", "client_id", "full_name", "position", "phones", "emails", "messengers",
                   "notes", "created_at", "created_by", "updated_at", "updated_by")
IDENTIFIER_COLUMNS = ("kind", "value", "client_id", "contact_id")
BULK_TABLES = ("clients", "contacts", "identifiers")


# -- loading ---------------------------------------------------------------------------------------

def libpq_dsn(url: str) -> str:
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _catalog_ddl(cur) -> tuple[list, list, list]:
    """(constraints to drop first, plain indexes, foreign keys) of the bulk tables."""
    cur.execute(
        "SELECT c.conname, c.conrelid::regclass::text, pg_get_constraintdef(c.oid), c.contype "
        "FROM pg_constraint c WHERE c.contype IN ('p', 'u', 'f') "
        "AND (c.conrelid = ANY(%s::regclass[]) OR c.confrelid = ANY(%s::regclass[])) "
        "ORDER BY c.conname", (list(BULK_TABLES), list(BULK_TABLES)))
    constraints = cur.fetchall()
    cur.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')) ORDER BY 1",
        (list(BULK_TABLES),))
    indexes = cur.fetchall()
    keys = [c for c in constraints if c[3] in ("p", "u")]
    foreign = [c for c in constraints if c[3] == "f"]
    return keys, indexes, foreign


def index_signature(url: str) -> list[tuple[str, str]]:
    """Every index and constraint of the bulk tables (to prove the rebuild changed nothing)."""
    with psycopg2.connect(libpq_dsn(url)) as conn, conn.cursor() as cur:
        keys, indexes, foreign = _catalog_ddl(cur)
        conn.rollback()
    return sorted([(c[0], c[2]) for c in keys + foreign] + [(i[0], i[1]) for i in indexes])


def load_org(url: str, org: Org) -> None:
    from services.clients.models import departments, staff

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.delete(departments))
        conn.execute(sa.delete(staff))
        conn.execute(sa.insert(departments), org.departments)
        conn.execute(sa.insert(staff), org.staff)
    engine.dispose()


@dataclass
class LoadStats:
    clients: int = 0
    contacts: int = 0
    identifiers: int = 0
    generate_s: float = 0.0
    copy_wait_s: float = 0.0
    index_s: float = 0.0
    analyze_s: float = 0.0
    total_s: float = 0.0


def load(url: str, count: int, gen: ClientGenerator, *, chunk: int = 25_000,
         sample_size: int = 0, progress=print) -> tuple[LoadStats, list[Client]]:
    """Replace the bulk tables' rows by ``count`` generated clients. Returns the timings and a
    uniform random sample (reservoir) of ``sample_size`` generated clients."""
    stats = LoadStats()
    started = time.perf_counter()
    sample: list[Client] = []
    sample_rng = random.Random(gen.rng.random())
    chunks: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []
    conn = psycopg2.connect(libpq_dsn(url))
    cur = conn.cursor()
    cur.execute("SET maintenance_work_mem = '512MB'")
    cur.execute("SET synchronous_commit = off")
    keys, indexes, foreign = _catalog_ddl(cur)
    cur.execute("TRUNCATE clients, contacts, identifiers")
    for name, table, _, _ in foreign + keys:
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.SQL(table), sql.Identifier(name)))
    for name, _ in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))

    def copier():
        try:
            while (item := chunks.get()) is not None:
                for table, columns, text in zip(
                        BULK_TABLES, (CLIENT_COLUMNS, CONTACT_COLUMNS, IDENTIFIER_COLUMNS), item,
                        strict=True):
                    cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN WITH (FREEZE)").format(
                        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))),
                        io.StringIO(text))
        except BaseException as exc:  # noqa: BLE001 - reported by the producer
            errors.append(exc)
            while chunks.get() is not None:
                pass

    loader = threading.Thread(target=copier, name="copy-loader", daemon=True)
    loader.start()
    try:
        done = 0
        while done < count:
            t0 = time.perf_counter()
            c_lines, k_lines, i_lines = [], [], []
            for _ in range(min(chunk, count - done)):
                client = gen.client()
                line, contact_lines, ident_lines = gen.lines(client)
                c_lines.append(line)
                k_lines.extend(contact_lines)
                i_lines.extend(ident_lines)
                done += 1
                if len(sample) < sample_size:
                    sample.append(client)
                elif sample_size:
                    j = sample_rng.randrange(done)
                    if j < sample_size:
                        sample[j] = client
            stats.contacts += len(k_lines)
            stats.identifiers += len(i_lines)
            t1 = time.perf_counter()
            chunks.put(("".join(c_lines), "".join(k_lines), "".join(i_lines)))
            t2 = time.perf_counter()
            stats.generate_s += t1 - t0
            stats.copy_wait_s += t2 - t1
            if errors:
                raise errors[0]
            if done % (chunk * 8) == 0 or done == count:
                progress(f"  generated {done:,}/{count:,} clients "
                         f"({time.perf_counter() - started:.0f} s)")
        chunks.put(None)
        t1 = time.perf_counter()
        loader.join()
        stats.copy_wait_s += time.perf_counter() - t1
        if errors:
            raise errors[0]
        stats.clients = count
        t0 = time.perf_counter()
        for name, table, definition, _ in keys:
            cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + definition).format(
                sql.SQL(table), sql.Identifier(name)))
        for _, definition in indexes:
            cur.execute(definition)
        for name, table, definition, _ in foreign:
            cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} " + definition).format(
                sql.SQL(table), sql.Identifier(name)))
        conn.commit()
        stats.index_s = time.perf_counter() - t0
    except BaseException:
        chunks.put(None)
        conn.rollback()
        raise
    finally:
        loader.join(timeout=60)
    t0 = time.perf_counter()
    conn.autocommit = True
    cur.execute("VACUUM (ANALYZE) clients, contacts, identifiers, staff, departments")
    stats.analyze_s = time.perf_counter() - t0
    conn.close()
    stats.total_s = time.perf_counter() - started
    return stats, sample


def selfcheck(seed: int = 99, n: int = 500) -> None:
    """Generated cards survive the service's own validation unchanged (checksums, E.164, name
    keys), and the identifiers rows are those ``identifiers_of`` gives for the normalised card."""
    gen = ClientGenerator(seed, Org.generate(seed))
    for _ in range(n):
        c = gen.client()
        card = normalise_client({"short_name": c.short_name, "inn": c.inn, "kpp": c.kpp,
                                 "ogrn": c.ogrn, "region": c.region, "phones": c.phones,
                                 "emails": c.emails, "website": c.website}, partial=True)
        assert card["inn"] == c.inn and card["kpp"] == c.kpp and card["ogrn"] == c.ogrn, c
        assert card["phones"] == c.phones and card["emails"] == c.emails, c
        assert card["name_key"] == c.name_key, (card["name_key"], c.name_key)
        assert card.get("legal_form") == c.legal_form or (
            c.short_name == c.bare and card.get("legal_form") is None), c
        assert identifiers_of(card) == identifiers_of(
            {"inn": c.inn, "kpp": c.kpp, "phones": c.phones, "emails": c.emails})
