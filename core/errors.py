"""Typed errors that carry a message a clinician understands and what to do next."""

from __future__ import annotations


class TriageError(Exception):
    """Base of every expected failure; `str(error)` is safe to show to a user."""

    title = "Something went wrong"

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.advice = advice

    def __str__(self) -> str:
        return f"{self.message} {self.advice}".strip()


class ImageReadError(TriageError):
    """The file could not be read as an X-ray image."""

    title = "Cannot open this image"


class FileMissingError(ImageReadError):
    """The path does not exist."""


class NotAFileError(ImageReadError):
    """The path is a folder or another non-file."""


class EmptyFileError(ImageReadError):
    """The file has zero bytes."""


class UnsupportedFormatError(ImageReadError):
    """The file is not an image format we read (e.g. a PDF or text renamed .png)."""


class CorruptImageError(ImageReadError):
    """The file looks like an image but is truncated or damaged."""


class EmptyImageError(ImageReadError):
    """The image has no pixels, or too few to be an X-ray."""


class ImageTooSmallError(EmptyImageError):
    """The image is too small to show a fracture (e.g. a thumbnail)."""


class ImageTooLargeError(ImageReadError):
    """The image is absurdly large (a possible decompression bomb)."""


class NotAnXrayError(ImageReadError):
    """The image is clearly not a radiograph (e.g. a colour photograph)."""


class BlankImageError(NotAnXrayError):
    """The image holds no anatomy: (nearly) one value everywhere, or no structure at all."""

    title = "Nothing to analyse"


class FileUnreadableError(ImageReadError):
    """The file exists but cannot be read (no permission, a disk or network error)."""


class FileNameTooLongError(ImageReadError):
    """The path is longer than the file system allows, so it cannot name a file."""


class NoImagesFoundError(ImageReadError):
    """A folder given to the command line holds no image files."""


class MultiFrameDicomError(ImageReadError):
    """A DICOM file holding several frames (e.g. a cine loop or a multi-frame series)."""


class DicomNoPixelDataError(ImageReadError):
    """A DICOM file without an image in it (e.g. a structured report)."""


class UnknownBoneError(TriageError, ValueError):
    """A bone was asked for that the tool has no model for (e.g. 'Knee')."""

    title = "Unknown bone type"


class ModelError(TriageError):
    """The model files cannot be used."""

    title = "The analysis models are not available"


class WeightsFolderMissingError(ModelError):
    """The weights folder does not exist."""


class ManifestError(ModelError):
    """The weights manifest is missing or unreadable."""


class ModelFileMissingError(ModelError):
    """A model file listed in the manifest is missing."""


class ChecksumMismatchError(ModelError):
    """A model file does not match the checksum in the manifest."""


class InvalidModelFileError(ModelError):
    """A file listed as a model is not a model of the expected shape."""


class ReportWriteError(TriageError):
    """A report, CSV or DICOM result could not be written (full disk, no permission, bad path)."""

    title = "Could not save the report"


class NotDicomSourceError(TriageError):
    """A DICOM result was asked for an input that is not a DICOM file."""

    title = "No DICOM result for this file"
