"""DICOM-tag bone routing: the keyword table, how tags combine, real files written with pydicom."""

from __future__ import annotations

import numpy as np
import pytest

from core.bone_routing import BONES, PART_WORDS, TagRouting, bone_from_dicom, bone_from_text
from tests.test_dicom import gradient, write_dicom

# (tag text, bone it routes to, names only parts that are not one of the three)
TABLE = [
    ("ELBOW", "Elbow", False),
    ("XR ELBOW LT 2 VIEWS", "Elbow", False),
    ("XR_ELBOW", "Elbow", False),
    ("ElbowLat", "Elbow", False),
    ("ELB AP/LAT", "Elbow", False),
    ("Olecranon axial", "Elbow", False),
    ("Coude face + profil", "Elbow", False),
    ("Ellenbogen re. 2 Eb.", "Elbow", False),
    ("RX CODO IZQUIERDO", "Elbow", False),
    ("bilateral elbows", "Elbow", False),
    ("HAND", "Hand", False),
    ("Hand PA oblique", "Hand", False),
    ("HANDS BOTH", "Hand", False),
    ("RX MANO DERECHA", "Hand", False),
    ("Radio main gauche", "Hand", False),
    ("Mão esquerda", "Hand", False),
    ("SHOULDER", "Shoulder", False),
    ("R SHLDR 3V", "Shoulder", False),
    ("SHLD AP", "Shoulder", False),
    ("ÉPAULE DROITE", "Shoulder", False),
    ("Schulter li.", "Shoulder", False),
    ("RX HOMBRO", "Shoulder", False),
    ("Spalla dx", "Shoulder", False),
    ("WRIST", None, True),
    ("XR WRIST 3 VIEWS", None, True),
    ("Scaphoid series", None, True),
    ("Handgelenk d.p.", None, True),  # German "hand joint" is the wrist, not the hand
    ("Poignet gauche", None, True),
    ("MUÑECA DERECHA", None, True),
    ("FINGER", None, True),
    ("Thumb lat", None, True),
    ("FOREARM", None, True),
    ("avant-bras", None, True),
    ("Lower arm AP", None, True),
    ("XR HIP W PELVIS", None, True),
    ("HUMERUS", None, True),
    ("Upper arm", None, True),
    ("CLAVICLE", None, True),
    ("ACJOINT", None, True),
    ("KNEE", None, True),
    ("ANKLE", None, True),
    ("CHEST PA", None, True),
    ("LSPINE", None, True),
    ("WRIST AND FOREARM", None, True),
    ("HAND AND WRIST", None, False),  # a bone and another part: not routed, not excluded
    ("ELBOW/FOREARM", None, False),
    ("", None, False),
    ("EXTREMITY", None, False),
    ("UPPER EXTREMITY", None, False),
    ("ARM", None, False),  # plain "arm" is too vague to name a part
    ("Radial head view", None, False),  # "head" is not the skull here
    ("main series", None, False),  # English "main", not French "main" (hand)
    ("MAINS", None, False),
    ("HANDHELD", None, False),
    ("METACARPAL", None, False),  # conservative: not listed, the model decides
    ("1234 ###", None, False),
]


@pytest.mark.parametrize(("text", "bone", "excluded"), TABLE)
def test_keyword_table(text, bone, excluded):
    match = bone_from_text(text)
    assert match.bone == bone
    assert match.excluded is excluded


def test_every_table_word_maps_to_its_part():
    for part, words in PART_WORDS.items():
        for word in words.split(","):
            assert bone_from_text(word).parts == (part,), word
    assert set(BONES) <= set(PART_WORDS)


def test_parts_are_listed_in_order_of_mention():
    assert bone_from_text("Wrist, hand and elbow").parts == ("Wrist", "Hand", "Elbow")


def dicom(tmp_path, name="study.dcm", pixels=True, **tags):
    return write_dicom(tmp_path / name, gradient() if pixels else None, **tags)


def test_body_part_examined_routes(tmp_path):
    routing = bone_from_dicom(dicom(tmp_path, BodyPartExamined="ELBOW"))
    assert routing == TagRouting(
        bone="Elbow", tag_text="BodyPartExamined=ELBOW", excluded=False, parts=("Elbow",)
    )
    assert routing.note == ""


def test_description_routes_when_body_part_is_absent(tmp_path):
    path = dicom(tmp_path, StudyDescription="XR SHOULDER 2 VIEWS RT", SeriesDescription="AP")
    routing = bone_from_dicom(path)
    assert routing.bone == "Shoulder"
    assert routing.tag_text == "StudyDescription=XR SHOULDER 2 VIEWS RT"


def test_protocol_name_routes(tmp_path):
    routing = bone_from_dicom(dicom(tmp_path, ProtocolName="Hand PA"))
    assert (routing.bone, routing.tag_text) == ("Hand", "ProtocolName=Hand PA")


def test_generic_body_part_falls_through_to_description(tmp_path):
    path = dicom(tmp_path, BodyPartExamined="EXTREMITY", SeriesDescription="L ELBOW LAT")
    assert bone_from_dicom(path).bone == "Elbow"


def test_agreeing_tags_route(tmp_path):
    path = dicom(
        tmp_path,
        BodyPartExamined="HAND",
        StudyDescription="XR HAND AND WRIST",
        SeriesDescription="Hand oblique",
    )
    routing = bone_from_dicom(path)
    assert routing.bone == "Hand" and not routing.conflict


def test_wrist_is_excluded_and_no_bone_is_guessed(tmp_path):
    routing = bone_from_dicom(dicom(tmp_path, BodyPartExamined="WRIST"))
    assert routing.bone is None and routing.excluded
    assert routing.tag_text == "BodyPartExamined=WRIST"
    assert routing.note == (
        "DICOM says wrist (BodyPartExamined=WRIST), which is not an elbow, hand or shoulder X-ray."
    )


def test_finger_description_is_excluded(tmp_path):
    routing = bone_from_dicom(dicom(tmp_path, SeriesDescription="R 3RD FINGER LAT"))
    assert routing.bone is None and routing.excluded and routing.parts == ("Finger",)


@pytest.mark.parametrize(
    "tags",
    [
        {"BodyPartExamined": "ELBOW", "SeriesDescription": "WRIST LAT"},
        {"BodyPartExamined": "HAND", "SeriesDescription": "FINGER PA"},
        {"BodyPartExamined": "WRIST", "StudyDescription": "XR HAND"},
        {"SeriesDescription": "SHOULDER AP", "StudyDescription": "XR ELBOW"},
        {"SeriesDescription": "HAND AND WRIST"},
    ],
)
def test_conflicting_tags_route_nothing(tmp_path, tags):
    routing = bone_from_dicom(dicom(tmp_path, **tags))
    assert routing.bone is None and not routing.excluded and routing.conflict
    assert "disagree" in routing.note
    first = next(value for value in tags.values())
    assert first in routing.tag_text


def test_conflicting_excluded_parts_still_exclude(tmp_path):
    routing = bone_from_dicom(
        dicom(tmp_path, BodyPartExamined="WRIST", SeriesDescription="FOREARM")
    )
    assert routing.excluded and routing.bone is None and not routing.conflict


def test_no_tags_means_no_routing(tmp_path):
    assert bone_from_dicom(dicom(tmp_path)) == TagRouting()


def test_header_only_file_without_pixels_is_read(tmp_path):
    routing = bone_from_dicom(dicom(tmp_path, pixels=False, BodyPartExamined="SHOULDER"))
    assert routing.bone == "Shoulder"


def test_extensionless_dicom_is_recognised(tmp_path):
    path = dicom(tmp_path, name="IM0001", BodyPartExamined="ELBOW")
    assert bone_from_dicom(path).bone == "Elbow"


@pytest.mark.filterwarnings("ignore:The value length:UserWarning")  # longer than DICOM allows
def test_long_description_is_shortened_in_tag_text(tmp_path):
    routing = bone_from_dicom(dicom(tmp_path, StudyDescription="ELBOW " + "X" * 120))
    assert routing.bone == "Elbow" and len(routing.tag_text) < 100


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a dicom file at all",
        b"\0" * 128 + b"DICM" + bytes(range(256)) * 4,
        np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    ],
    ids=["empty", "text", "preamble-then-garbage", "random"],
)
def test_garbage_dcm_gives_no_routing_and_no_exception(tmp_path, content):
    path = tmp_path / "broken.dcm"
    path.write_bytes(content)
    assert bone_from_dicom(path) == TagRouting()


def test_header_cut_short_gives_no_routing(tmp_path):
    path = dicom(tmp_path, BodyPartExamined="ELBOW")
    path.write_bytes(path.read_bytes()[:200])  # the file meta, then nothing
    assert bone_from_dicom(path) == TagRouting()


def test_non_dicom_files_are_not_routed(tmp_path, sample_png):
    assert bone_from_dicom(sample_png) == TagRouting()
    assert bone_from_dicom(tmp_path / "missing.dcm") == TagRouting()
    assert bone_from_dicom(tmp_path) == TagRouting()
    text = tmp_path / "elbow.txt"
    text.write_text("BodyPartExamined=ELBOW")
    assert bone_from_dicom(text) == TagRouting()
