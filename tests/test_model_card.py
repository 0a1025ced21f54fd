"""The model card's sentences about the networks and the gated heads."""

from __future__ import annotations

from training.report.model_card import architecture, polarity_lines, verdict_sentence


def test_the_model_card_says_what_the_polarity_head_does():
    assert polarity_lines({}) == []
    head = {"network": "bone_type", "threshold": 0.7, "validation": {"accuracy": 0.995}}
    (line,) = polarity_lines({"polarity": head})
    assert "`bone_type`" in line and "70%" in line and "99.5%" in line


def test_the_model_card_names_each_network_family_and_its_stride():
    fracture = {"provenance": {"backbone": "mobilenet_v1"}, "input_size": 384,
                "feature_shape": [24, 24, 1024]}  # fmt: skip
    bone_type = {"provenance": {"training_options": {"backbone": "mobilenet_v1"}},
                 "input_size": 160, "feature_shape": [5, 5, 1024]}  # fmt: skip
    assert architecture(fracture) == "MobileNet v1 (atrous last block, stride 16)"
    assert architecture(bone_type) == "MobileNet v1"
    assert architecture({"input_size": 160, "feature_shape": [5, 5, 2048]}) == "ResNet50"


def test_the_model_card_says_when_the_verdict_saw_changed_views():
    hand = {"network": "fracture", "plus_heads": ["fracture_term_shared"]}
    heads = {"fracture_elbow": hand, "fracture_term_shared": {"network": "shared"}}
    plain = verdict_sentence(heads)
    assert "`fracture` and `shared`" in plain and "changed view" not in plain
    hand["hospital_copies"] = 2
    assert "2 changed view(s)" in verdict_sentence(heads)


def test_the_model_card_says_which_model_answers_a_map_alone_verdict():
    from training.export.fracture import answered_by

    heads = {
        f"fracture_{bone.lower()}": {"network": "fracture", "pooling": "lse", "pooling_r": 2.0,
                                     "answered_by": answered_by(bone, bone == "Hand")}
        for bone in ("Elbow", "Hand", "Shoulder")
    }  # fmt: skip
    sentence = verdict_sentence(heads)
    assert "network `fracture`'s fracture map (the log-sum-exp" in sentence and "r = 2" in sentence
    assert "Hand: the hand model (the all-region model fitted further on hands)" in sentence
    assert (
        "Elbow: the all-region model" in sentence and "Shoulder: the all-region model" in sentence
    )


def test_a_network_line_gives_both_runs_minutes_and_the_variants_run_times():
    from training.report.model_card import network_line

    entry = {
        "input_size": 384, "feature_shape": [24, 24, 1024], "quantization": "float32",
        "provenance": {"backbone": "mobilenet_v1", "training_minutes": 7.0,
                       "started_from": {"run": "first", "training_minutes": 90.3}},
        "parity": {"test_split": {"dynamic-int8": {
            "bone_type_agreement": 1.0, "latency_ms": {"float32": 28.7, "dynamic-int8": 39.3}}}},
    }  # fmt: skip
    line = network_line("fracture", entry, {"fracture_hand": {"network": "fracture"}})
    assert "trained in 90.3 + 7.0 min." in line and "trained ?" not in line
    went_on = {**entry, "provenance": {"backbone": "mobilenet_v1", "training_minutes": 45.3,
                                       "started_from": entry["provenance"]}}  # fmt: skip
    assert "trained in 90.3 + 7.0 + 45.3 min." in network_line("fracture", went_on, {})
    assert "one run 39.3 ms against 28.7 ms in float32" in line
    entry["provenance"] = {"date": "2026-12-07T01:26:00Z", "machine": "x86_64, 2 CPU cores",
                           "training_minutes": 55.3}  # fmt: skip
    line = network_line("fracture", entry, {})
    assert "trained 2026-12-07T01:26:00Z on x86_64, 2 CPU cores in 55.3 min" in line


def test_the_model_card_counts_the_split_in_either_form_the_provenance_records():
    from training.report.model_card import split_regions

    counts = {"hand": {"images": 63, "positive": 9}, "elbow": {"images": 5, "positive": 3}}
    assert split_regions({"images": 68, "regions": counts}) == counts
    assert split_regions(counts) == counts
    assert split_regions({"images": 0}) == {}
