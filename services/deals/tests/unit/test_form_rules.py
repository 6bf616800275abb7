"""Web-form rules: fields, spam signs, the signed token, origins, the token bucket."""

from datetime import UTC, datetime, timedelta

from services.deals.domain import forms

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SECRET = "s3cret"


def token(seconds_ago: int, key: str = "KEY") -> str:
    return forms.sign(SECRET, key, int(NOW.timestamp()) - seconds_ago)


def reason(data, key="KEY"):
    return forms.spam_reason(data, secret=SECRET, form_key=key, now=NOW, min_fill_seconds=3)


def test_spam_signs():
    assert reason({"form_token": token(10)}) is None
    assert reason({"form_token": token(10), "website": "http://spam"}) == "honeypot"
    assert reason({"form_token": token(1)}) == "too_fast"
    assert reason({}) == "token"
    assert reason({"form_token": token(10, key="OTHER")}) == "token"      # another form's
    assert reason({"form_token": "123.deadbeef"}) == "token"
    assert reason({"form_token": token(2 * 24 * 3600)}) == "token"        # too old


def test_fields_are_checked_and_named():
    clean, errors = forms.clean_submission({
        "name": "Иван", "company": "ООО Кровля", "phone": "8 916 123-45-67",
        "email": "Ivan@Krovlya.RU", "utm_source": "yandex", "consent": "on",
        "page_url": "https://roof.example/catalog"}, consent_required=True)
    assert not errors
    assert clean["phone"] == "+79161234567" and clean["email"] == "ivan@krovlya.ru"
    assert clean["consent"] is True and clean["utm_source"] == "yandex"
    _, errors = forms.clean_submission({"email": "nope", "inn": "12", "region": "Урал",
                                        "page_url": "javascript:alert(1)"},
                                       consent_required=True)
    assert set(errors) == {"email", "inn", "region", "page_url", "consent"}
    _, errors = forms.clean_submission({"name": "Без контактов"}, consent_required=False)
    assert set(errors) == {"phone"}


def test_origins():
    assert forms.origin_allowed("https://roof.example", ["https://roof.example/"])
    assert not forms.origin_allowed("https://evil.example", ["https://roof.example"])
    assert forms.origin_allowed(None, ["https://roof.example"])
    assert forms.origin_allowed("https://any.example", [])


def test_token_bucket_refills_over_time():
    allowed, tokens, _ = forms.take_token(None, None, NOW, rate_per_minute=6, burst=2)
    assert allowed and tokens == 1.0
    allowed, tokens, _ = forms.take_token(tokens, NOW, NOW, rate_per_minute=6, burst=2)
    assert allowed and tokens == 0.0
    allowed, tokens, retry = forms.take_token(tokens, NOW, NOW, rate_per_minute=6, burst=2)
    assert not allowed and retry == 10
    allowed, _, _ = forms.take_token(tokens, NOW, NOW + timedelta(seconds=10),
                                     rate_per_minute=6, burst=2)
    assert allowed


def test_form_keys_are_random():
    assert len({forms.new_form_key() for _ in range(50)}) == 50
