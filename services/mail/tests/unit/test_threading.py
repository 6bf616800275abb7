from datetime import UTC, datetime

import pytest

from services.mail.domain.threading import choose_thread, normalise_subject, thread_refs


@pytest.mark.parametrize("subject", [
    "Запрос цены", "Re: Запрос цены", "RE: Отв: Запрос цены", "Fwd: re:  Запрос   цены",
    "Пересл: Re: Запрос цены", "Re[2]: Запрос цены", "FW: Ответ: Запрос цены",
    "[CRM-1a2b3c4d] Re: Запрос цены",
])
def test_reply_and_forward_prefixes_are_stripped_repeatedly(subject):
    expected = "[crm-1a2b3c4d] запрос цены" if subject.startswith("[") else "запрос цены"
    assert normalise_subject(subject) == expected


def test_subject_words_that_only_look_like_prefixes_stay():
    assert normalise_subject("Reply needed: price") == "reply needed: price"
    assert normalise_subject("Отвод воды") == "отвод воды"
    assert normalise_subject(None) == ""


def test_parent_is_last_reference_root_is_first():
    refs = thread_refs("<c@x>", ("<a@x>", "<b@x>"), "<b@x>")
    assert refs.parent == "<b@x>" and refs.root == "<a@x>"
    assert refs.refs == ("<a@x>", "<b@x>")


def test_in_reply_to_when_there_are_no_references():
    refs = thread_refs("<c@x>", (), "<b@x>")
    assert refs.parent == "<b@x>" == refs.root and refs.has_refs


def test_no_headers_means_no_refs_and_own_id_never_counts():
    assert not thread_refs("<c@x>", (), None).has_refs
    assert thread_refs("<c@x>", ("<c@x>",), "<c@x>").refs == ()


def test_ids_compare_case_sensitively():
    refs = thread_refs("<A@x>", ("<a@x>",), None)
    assert refs.parent == "<a@x>"          # <a@x> is another message than <A@x>


def test_choose_thread_keeps_the_oldest_and_merges_the_rest():
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    survivor, others = choose_thread([("late", t2), ("early", t1), ("late", t2)])
    assert survivor == "early" and others == ["late"]
    assert choose_thread([]) == (None, [])


def _index_assign(index, mid, references=(), in_reply_to=None, client=None, subject="s",
                  at=None, ids=iter(range(1000))):
    refs = thread_refs(mid, references, in_reply_to)
    return index.assign(mid, refs, client, subject, at or datetime(2026, 1, 1, tzinfo=UTC),
                        lambda: f"t{next(ids)}")


def test_a_late_parent_joins_the_threads_of_its_children():
    from services.mail.domain.threading import ThreadIndex

    index = ThreadIndex()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # two replies arrive first, each naming only its own parent: two threads so far
    a = _index_assign(index, "<c@x>", in_reply_to="<b@x>", at=t0.replace(hour=3))
    b = _index_assign(index, "<b2@x>", in_reply_to="<a@x>", at=t0.replace(hour=2))
    assert a != b
    # <b@x> answers <a@x>: it links both
    c = _index_assign(index, "<b@x>", references=("<a@x>",), at=t0.replace(hour=1))
    assert index.final(a) == index.final(b) == index.final(c)
    # the root itself comes last and joins them
    root = _index_assign(index, "<a@x>", at=t0)
    assert index.final(root) == index.final(a)


def test_stored_threads_merge_into_the_oldest():
    from services.mail.domain.threading import ThreadIndex

    index = ThreadIndex()
    old, new = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    index.add_stored("<child@x>", ("<p@x>",), "stored-new", new)
    index.add_stored("<other@x>", ("<p@x>", "<q@x>"), "stored-old", old)
    thread = _index_assign(index, "<p@x>")
    assert thread == "stored-old" and index.merged() == {"stored-new": "stored-old"}


def test_subject_fallback_only_without_references_and_within_one_client():
    from services.mail.domain.threading import ThreadIndex

    index = ThreadIndex()
    first = _index_assign(index, "<1@x>", client="c1", subject="Счёт")
    assert _index_assign(index, None, client="c1", subject="Re: счёт") == first
    assert _index_assign(index, None, client="c2", subject="Re: Счёт") != first
    assert _index_assign(index, None, client=None, subject="Re: Счёт") != first
    # a reply naming an unknown parent does not join by subject
    assert _index_assign(index, "<9@x>", in_reply_to="<unknown@x>", client="c1",
                         subject="Re: Счёт") != first
