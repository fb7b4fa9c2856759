"""The behaviour teacher's inputs: neighbours, the template, the token budget, and the leakage guard."""
from __future__ import annotations

import pytest

from reranker_core.template import ProductTemplate
from training.behaviour import (NEIGHBOUR_MARK, OWN_MARK, BehaviourContext, BehaviourInputs, ImplicitView,
                                build_context, with_behaviour)
from training.datasets import split_of
from training.implicit import export_judgments, implicit_judgments, read_implicit_labels
from training.neighbours import QueryIndex
from training.ubievents import JoinedEvent, UbiEvent

FRACTIONS, SALT = (0.8, 0.1, 0.1), "reranker"
TEMPLATE = ProductTemplate(max_tokens=48)
# "drill" is a training query; its near-duplicates "drills" (test) and "cordless drill" (validation) are held out.
TRAIN, TWINS = ["drill", "drill bits", "hammer drill", "paints", "lamp"], ["drills", "cordless drill"]
HELD_OUT = [*TWINS, "paint", "sink"]


def test_the_fixture_queries_fall_in_the_splits_the_tests_assume():
    assert {split_of(q, FRACTIONS, SALT) for q in TRAIN} == {"train"}
    assert [split_of(q, FRACTIONS, SALT) for q in HELD_OUT] == ["test", "validation", "test", "validation"]


def products() -> dict[str, dict[str, str]]:
    """One product per query, whose title names the query it was clicked for (so a leak is visible by title)."""
    return {f"p-{q}": {"title": f"title clicked for {q}"} for q in TRAIN + HELD_OUT} | {
        "p-other": {"title": "unclicked garden hose"}}


def events() -> list[JoinedEvent]:
    """Every query, held-out ones included, gets a click on its own product and an impression of another."""
    out = []
    for q in TRAIN + HELD_OUT:
        out += [JoinedEvent(q, UbiEvent("impression", "id", f"p-{q}", "product_id", 0)),
                JoinedEvent(q, UbiEvent("click", "id", f"p-{q}", "product_id", 0)),
                JoinedEvent(q, UbiEvent("impression", "id", "p-other", "product_id", 1))]
    return out


@pytest.fixture
def context(tmp_path) -> BehaviourContext:
    """Built as train-teacher builds it: events -> implicit judgments -> exported list -> context."""
    path, _ = export_judgments(tmp_path / "judgments.json", implicit_judgments(events(), FRACTIONS, SALT),
                               "clicks", "coec", {"simulated": True})
    labels = read_implicit_labels(path)
    # a list exported under another split would hold held-out queries: the context drops them too
    labels |= {(q, f"p-{q}"): 0.9 for q in HELD_OUT}
    return build_context(labels, products(), TEMPLATE, FRACTIONS, SALT, top_n=2, neighbours=3)


def test_the_query_index_holds_training_queries_only_and_never_returns_the_query_itself():
    with pytest.raises(ValueError, match="held-out queries"):
        QueryIndex(TRAIN + ["drills"], FRACTIONS, SALT)
    index = QueryIndex(TRAIN, FRACTIONS, SALT)
    nearest = index.nearest("Drill ", 3)
    assert [q for q, _ in nearest][:2] in (["drill bits", "hammer drill"], ["hammer drill", "drill bits"])
    assert "drill" not in [q for q, _ in nearest] and all(s > 0 for _, s in nearest)
    assert index.nearest("drills", 3) == [] and index.nearest("cordless drill", 3) == []  # held out: nothing


def test_no_held_out_query_contributes_an_event_a_neighbour_or_an_implicit_judgment(context):
    assert set(context.engaged) == set(TRAIN) and set(context.implicit) == set(TRAIN)
    assert context.dropped_held_out == len(HELD_OUT)
    assert set(context.index.queries) == set(TRAIN)
    held_out_titles = {f"title clicked for {q}" for q in HELD_OUT}
    assert not held_out_titles & {t for titles in context.engaged.values() for t in titles}
    assert not held_out_titles & {t for labels in context.implicit.values() for t in labels}
    with pytest.raises(ValueError, match="held-out query 'drills'"):
        BehaviourContext({"drills": ["x"]}, FRACTIONS, SALT)


def test_a_training_query_reads_its_own_and_its_neighbours_clicks_a_held_out_query_reads_nothing(context,
                                                                                                  minilm_tokenizer):
    text = context.behaviour("drill")
    assert text.startswith(f"{OWN_MARK}title clicked for drill{NEIGHBOUR_MARK}")
    assert "title clicked for drill bits" in text and "title clicked for hammer drill" in text
    assert "drills" not in text and "cordless" not in text  # the held-out twins are nobody's neighbour
    for q in HELD_OUT:  # a validation / test query reads the plain input, even though "drill" is next to it
        assert context.behaviour(q) == ""
    inputs = BehaviourInputs(context, minilm_tokenizer, TEMPLATE.max_tokens)
    pairs = [(q, "title clicked for drill") for q in HELD_OUT]
    assert inputs(pairs) == pairs
    view = ImplicitView(context, default=0.25)
    pairs = [("drill", "title clicked for drill"), ("drill", "not judged"), ("drills", "title clicked for drills"),
             ("cordless drill", "title clicked for drill")]
    assert view.score(pairs) == [0.5, 0.25, 0.25, 0.25]  # COEC 1 -> 0.5; the default where no judgment may be


def test_the_cut_is_the_longest_prefix_that_fits_found_with_few_encodings(minilm_tokenizer):
    import random

    from training.behaviour import MIN_BEHAVIOUR_PARTS, prefix_counts

    def longest(query: str, behaviour: str, text: str, budget: int) -> str:  # the definition, by brute force
        parts = behaviour.split(" ")
        for k in range(len(parts), -1, -1):
            q = query + " ".join(parts[:k]) if k else query
            if len(minilm_tokenizer(q, text, truncation=False)["input_ids"]) <= budget:
                return query + behaviour if k == len(parts) else q if k >= MIN_BEHAVIOUR_PARTS else query
        return query

    class Counted:  # the tokenizer, counting its calls
        calls = 0

        def __call__(self, *args, **kwargs):
            Counted.calls += 1
            return minilm_tokenizer(*args, **kwargs)

        def num_special_tokens_to_add(self, pair: bool = False) -> int:
            return minilm_tokenizer.num_special_tokens_to_add(pair=pair)

    rng = random.Random(7)
    words = ('DEWALT 20-Volt MAX Lithium-Ion 1/2 in. Drill/Driver Kit M18 3/4" x 10 ft. PVC Schedule-40 élan '
             "5,000-BTU Energy-Star (2-Pack)").split()

    def phrase(low: int, high: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(low, high)))

    tokenizer, cases = Counted(), 0
    for _ in range(60):
        query, titles, text = phrase(1, 4), [phrase(3, 12) for _ in range(rng.randint(1, 8))], phrase(2, 20)
        behaviour = OWN_MARK + "; ".join(titles[:3]) + (NEIGHBOUR_MARK + "; ".join(titles[3:]) if titles[3:] else "")
        counts = prefix_counts(minilm_tokenizer, query, behaviour)
        for budget in (32, 48, 64, 128):
            assert with_behaviour(tokenizer, query, behaviour, text, budget, counts) == longest(
                query, behaviour, text, budget)
            cases += 1
    assert Counted.calls <= 4 * cases  # the text, the guess and the word after it (3.5 measured); searching: ~9


def test_behaviour_is_cut_first_to_keep_the_pair_within_budget_and_the_product_text_whole(minilm_tokenizer):
    behaviour = OWN_MARK + "; ".join(f"long product title number {i} with many words" for i in range(20))
    text = "cordless drill kit 18V with two batteries"

    def length(q: str) -> int:
        return len(minilm_tokenizer(q, text)["input_ids"])

    cut = with_behaviour(minilm_tokenizer, "drill", behaviour, text, 48)
    assert cut.startswith("drill" + OWN_MARK) and behaviour.startswith(cut[len("drill"):])
    assert 40 <= length(cut) <= 48  # cut to the budget, not far below it
    short = OWN_MARK + "red drill"
    assert with_behaviour(minilm_tokenizer, "drill", short, text, 48) == "drill" + short  # fits whole
    assert with_behaviour(minilm_tokenizer, "drill", behaviour, text, length("drill") + 3) == "drill"  # too little room
    assert with_behaviour(minilm_tokenizer, "drill", "", text, 48) == "drill"
