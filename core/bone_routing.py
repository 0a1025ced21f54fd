"""Route a DICOM image to Elbow, Hand or Shoulder from its header tags, with an explicit table."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from core.models import BONES

# Tags read, most specific first: the structured body-part code, then the free-text descriptions.
FIELDS = ("BodyPartExamined", "SeriesDescription", "ProtocolName", "StudyDescription")

# Body part -> the words (upper case, accents removed, comma-separated) that name it in a DICOM
# tag; a phrase is several words separated by spaces. Sources: the DICOM PS3.16 Annex L Body Part
# Examined terms (ELBOW, HAND, SHOULDER, WRIST, FINGER, THUMB, FOREARM, HUMERUS, CLAVICLE, SCAPULA,
# ACJOINT, KNEE, ...), common RIS abbreviations (ELB, SHLDR) and the words that French, German,
# Spanish, Italian, Portuguese and Dutch departments use. Words that are ambiguous somewhere
# (French MAIN, Spanish DEDO and PIE, HEAD as in "radial head", plain ARM) are left out or only
# matched in an unambiguous phrase. A generic region (EXTREMITY, UPPER LIMB) names no part.
PART_WORDS: dict[str, str] = {
    "Elbow": (
        "ELBOW, ELBOWS, ELB, OLECRANON, COUDE, COUDES, ELLENBOGEN, ELLBOGEN, ELLENBOGENGELENK, "
        "CODO, CODOS, GOMITO, GOMITI, COTOVELO, ELLEBOOG"
    ),
    "Hand": (
        "HAND, HANDS, MANO, MANOS, MANI, MANUS, MAO, MAOS, HANDEN, MAIN DROITE, MAIN GAUCHE, "
        "DEUX MAINS"
    ),
    "Shoulder": (
        "SHOULDER, SHOULDERS, SHLDR, SHLD, EPAULE, EPAULES, SCHULTER, SCHULTERGELENK, HOMBRO, "
        "HOMBROS, SPALLA, SPALLE, OMBRO, OMBROS, SCHOUDER"
    ),
    "Wrist": (
        "WRIST, WRISTS, WRST, SCAPHOID, CARPAL, CARPUS, POIGNET, POIGNETS, HANDGELENK, MUNECA, "
        "MUNECAS, POLSO, PUNHO, POLS"
    ),
    "Finger": "FINGER, FINGERS, FNGR, DOIGT, DOIGTS, DITO, DITA, VINGER",
    "Thumb": "THUMB, THUMBS, POUCE, DAUMEN, PULGAR, POLLICE, DUIM",
    "Forearm": (
        "FOREARM, FOREARMS, AVANT BRAS, AVANTBRAS, UNTERARM, ANTEBRAZO, AVAMBRACCIO, ANTEBRACO, "
        "ONDERARM, LOWER ARM, RADIUS, ULNA"
    ),
    "Humerus": "HUMERUS, HUMERI, HUMERO, OBERARM, UPPER ARM, BOVENARM",
    "Clavicle": "CLAVICLE, CLAVICLES, CLAV, CLAVICULE, CLAVICULA, KLAVIKULA, SCHLUSSELBEIN",
    "Scapula": "SCAPULA, SCAP, OMOPLATE, SCHULTERBLATT, ESCAPULA",
    "AC joint": "ACJOINT, AC JOINT, ACJ, ACROMIOCLAVICULAR",
    "Knee": "KNEE, KNEES, GENOU, KNIE, RODILLA, GINOCCHIO, JOELHO",
    "Ankle": "ANKLE, ANKLES, CHEVILLE, SPRUNGGELENK, TOBILLO, CAVIGLIA, TORNOZELO",
    "Foot": "FOOT, FEET, PIED, PIEDS, FUSS, PIEDE, CALCANEUS, HEEL",
    "Toe": "TOE, TOES, ORTEIL, ORTEILS",
    "Hip": "HIP, HIPS, HANCHE, HUFTE, CADERA, ANCA",
    "Pelvis": "PELVIS, BASSIN, BECKEN, SACRUM",
    "Leg": "LEG, LEGS, LOWER LEG, THIGH, FEMUR, TIBIA, FIBULA, JAMBE, CUISSE",
    "Chest": "CHEST, THORAX, RIBS, STERNUM, LUNG, LUNGS",
    "Spine": "SPINE, CSPINE, TSPINE, LSPINE, RACHIS, WIRBELSAULE, COLUMNA",
    "Skull": "SKULL, SCHADEL, CRANEO, CRANIO, MANDIBLE, SINUSES",
    "Abdomen": "ABDOMEN, ABDO, KUB",
}

_PHRASES: dict[tuple[str, ...], str] = {
    tuple(words.split()): part
    for part, entries in PART_WORDS.items()
    for words in entries.split(",")
}
_LONGEST = max(len(phrase) for phrase in _PHRASES)
_MAX_SHOWN = 64


@dataclass(frozen=True)
class TextMatch:
    """The body parts one tag's text names, in order of first mention."""

    parts: tuple[str, ...] = ()

    @property
    def bone(self) -> str | None:
        """The bone when the text names exactly one part and it is Elbow, Hand or Shoulder."""
        return self.parts[0] if len(self.parts) == 1 and self.parts[0] in BONES else None

    @property
    def excluded(self) -> bool:
        """True when the text names body parts and none of them is one of the three bones."""
        return bool(self.parts) and not any(part in BONES for part in self.parts)


@dataclass(frozen=True)
class TagRouting:
    """What a DICOM header says about the bone type."""

    bone: str | None = None  # "Elbow" | "Hand" | "Shoulder", or None when the tags do not route
    tag_text: str = ""  # what the deciding tag(s) said, e.g. "BodyPartExamined=WRIST"
    excluded: bool = False  # the tags name a body part that is not one of the three
    parts: tuple[str, ...] = ()  # the body parts the deciding tag names, e.g. ("Wrist",)
    conflict: bool = False  # the tags name several body parts or disagree, so they are not used

    @property
    def note(self) -> str:
        """A clinician-readable sentence for the result, or "" when there is nothing to say."""
        if self.excluded:
            named = " and ".join(part.lower() for part in self.parts)
            return (
                f"DICOM says {named} ({self.tag_text}), which is not an elbow, hand or "
                "shoulder X-ray."
            )
        if self.conflict:
            return (
                f"The DICOM tags disagree on the body part ({self.tag_text}); they were not used."
            )
        return ""


def bone_from_text(text: str) -> TextMatch:
    """The body parts a tag value names (e.g. 'XR ELBOW LT 2 VIEWS' -> Elbow), from PART_WORDS."""
    words = _words(text)
    found: list[str] = []
    index = 0
    while index < len(words):
        for length in range(min(_LONGEST, len(words) - index), 0, -1):
            part = _PHRASES.get(tuple(words[index : index + length]))
            if part is not None:
                if part not in found:
                    found.append(part)
                index += length
                break
        else:
            index += 1
    return TextMatch(tuple(found))


def route_tags(tags: dict[str, str]) -> TagRouting:
    """Decide the bone from tag values (keys from FIELDS); conservative when the tags disagree.

    The deciding tag is the first in FIELDS order that names one bone, or only parts that are not
    one of the three. Every other tag that names a body part must agree with it (name the same
    part, or, for an excluded part, name only excluded parts too); otherwise nothing is routed.
    """
    matches = [
        (name, _shown(tags[name]), bone_from_text(str(tags[name])))
        for name in FIELDS
        if tags.get(name)
    ]
    informative = [(name, value, match) for name, value, match in matches if match.parts]
    if not informative:
        return TagRouting()
    deciding = next((item for item in informative if item[2].bone or item[2].excluded), None)
    if deciding is None:  # e.g. "HAND AND WRIST": several parts, one of them a bone
        return TagRouting(tag_text=_describe(informative[:1]), conflict=True)
    name, value, match = deciding
    disagreeing = [item for item in informative if not _agrees(item[2], match)]
    if disagreeing:
        return TagRouting(tag_text=_describe([deciding, *disagreeing]), conflict=True)
    return TagRouting(
        bone=match.bone, tag_text=f"{name}={value}", excluded=match.excluded, parts=match.parts
    )


def bone_from_dicom(path: str | Path) -> TagRouting:
    """Route a DICOM file by its header; non-DICOM or unreadable files give TagRouting().

    The file goes through the decoder's guards first (size limit before reading, see
    `core.imaging.read_file_bytes`), then `bone_from_bytes`."""
    from core.errors import TriageError
    from core.imaging import read_file_bytes

    try:
        data = read_file_bytes(path)
    except TriageError:
        return TagRouting()
    return bone_from_bytes(data, Path(path).name)


def bone_from_bytes(data: bytes, name: str) -> TagRouting:
    """Route a DICOM file's bytes by its header alone (never its pixel data), read through the
    decoder's guards (`core.dicom.read_header`: capped inflate, bounded reads); anything that is
    not a readable DICOM header gives TagRouting()."""
    from core.dicom import read_header
    from core.imaging import is_dicom

    try:
        if not is_dicom(data, name):
            return TagRouting()
        dataset = read_header(data, name)
        tags = {field: _value(dataset, field) for field in FIELDS}
    except Exception:  # noqa: BLE001 - any failure means "no tag information"
        return TagRouting()
    return route_tags(tags)


def study_of(path: str | Path) -> tuple[str, str] | None:
    """(StudyInstanceUID, StudyDescription) from a DICOM file's header, pixels not read, through
    the decoder's guards (size limit first, capped inflate, bounded reads); None for a file that
    is not DICOM, cannot be read or names no study."""
    from core.dicom import read_header
    from core.imaging import is_dicom, read_file_bytes

    try:
        data = read_file_bytes(path)
        if not is_dicom(data, Path(path).name):
            return None
        dataset = read_header(data, Path(path).name)
        uid, description = _value(dataset, "StudyInstanceUID"), _value(dataset, "StudyDescription")
    except Exception:  # noqa: BLE001 - an unreadable header groups the file by its folder
        return None
    return (uid.strip(), _shown(description)) if uid.strip() else None


def _agrees(other: TextMatch, deciding: TextMatch) -> bool:
    if other.excluded and deciding.excluded:
        return True
    return bool(set(other.parts) & set(deciding.parts))


def _describe(items) -> str:
    return "; ".join(f"{name}={value}" for name, value, _match in items)


def _words(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text))  # "ElbowLat" -> "Elbow Lat"
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in plain if not unicodedata.combining(char))
    plain = plain.upper()  # also turns German ß into SS
    return re.findall(r"[A-Z]+", plain)


def _shown(value) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _value(dataset, name: str) -> str:
    try:
        value = dataset.get(name, "")
    except Exception:  # noqa: BLE001 - a damaged element is the same as a missing one
        return ""
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):  # a multi-valued element
        return " ".join(str(item) for item in value)
    return str(value)
