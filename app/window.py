"""The main window: upload an X-ray, predict off the UI thread, show and save the result."""

from __future__ import annotations

import sys
import threading
import tkinter as tk
import traceback
from pathlib import Path
from tkinter import TclError, filedialog, messagebox

import customtkinter as ctk
import numpy.ma  # noqa: F401 - np.percentile imports it on first use: here, not on a first click
from PIL import Image, ImageTk

from app.capture import save_screenshot
from app.formatting import (
    AMBER,
    DISCLAIMER,
    default_screenshot_name,
    describe,
    shown_boxes,
    wrap_path,
)
from app.info import info_text
from app.worker import Worker
from app.worklist import Row
from app.worklist_view import WorklistPanel
from core.errors import ModelError, TriageError
from core.heatmap import draw_boxes
from core.imaging import read_xray
from core.manifest import DEFAULT_WEIGHTS, read_manifest
from core.models import BONES
from core.paths import IMAGES, SAMPLES
from predictions import CHOSEN
from reports.header import is_dicom_file

PREVIEW_HEIGHT = 256
PREVIEW_MAX_WIDTH = 480
SIDE_TEXT_MARGIN = 36  # the side panel's label padding (12 + 12) and CTkLabel's own inset
AUTO = "Auto"  # bone selector: the DICOM tags or the model decide
NOTE_ON_DARK = "#ffb74d"  # the notes' amber, readable in dark appearance mode
FILE_TYPES = [
    ("X-ray images", "*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.dcm *.dicom"),
    ("PNG", "*.png"),
    ("JPEG", "*.jpg *.jpeg"),
    ("BMP", "*.bmp"),
    ("TIFF", "*.tif *.tiff"),
    ("DICOM", "*.dcm *.dicom"),
    ("All files", "*"),
]
MISSING_WEIGHTS = (
    "The analysis models are missing or damaged, so Predict is unavailable. "
    "Get the 'weights' folder from the project again (see README, 'Default weights')."
)


class FractureApp(ctk.CTk):
    """The Bone Fracture Detection window."""

    def __init__(self, weights_dir: str | Path | None = None) -> None:
        if sys.platform.startswith("linux"):
            # CustomTkinter asks the desktop for its theme every 30 ms by starting `gsettings`
            # on the Tk thread, which stalls the window for up to a few hundred ms on a busy
            # machine: the theme is read once, at start, instead.
            ctk.set_appearance_mode(ctk.get_appearance_mode())
        Image.preinit()  # Pillow's format plugins load now, not while the first image opens
        super().__init__()
        self.weights_dir = Path(weights_dir) if weights_dir else DEFAULT_WEIGHTS
        self.worker = Worker()
        self.paths: list[Path] = []
        self.gray = None  # the decoded image shown in the preview
        self.preview_image: Image.Image | None = None  # its small copy, made off the Tk thread
        self._opening = False  # a file is being decoded (in a thread)
        self.result = None
        self.result_status = ""  # the status line of the last result (kept beside a heatmap)
        self.overlay_image: Image.Image | None = None
        self.models_ready = False
        self.uploads_allowed = False
        self.worklist: WorklistPanel | None = None  # made when a folder is first opened
        self.title("Bone Fracture Detection")
        self.geometry("860x560")
        self.minsize(720, 500)
        self._set_icon()
        self._build()
        self._bind_keys()
        self.after(50, self._poll)
        self._check_weights()

    # ------------------------------------------------------------------ layout

    def _set_icon(self) -> None:
        try:
            from PIL import ImageTk

            self._icon = ImageTk.PhotoImage(Image.open(IMAGES / "icon.png"))
            self.iconphoto(True, self._icon)
        except Exception:  # noqa: BLE001 - a missing icon must not stop the app
            pass

    def _build(self) -> None:
        self.grid_columnconfigure(0, weight=3, uniform="panels")  # fixed 3:2 split
        self.grid_columnconfigure(1, weight=2, uniform="panels")
        self.grid_rowconfigure((2, 3), weight=1)  # row 3: the worklist, once opened

        header = ctk.CTkFrame(self, corner_radius=0)
        header.grid(row=0, column=0, columnspan=2, sticky="ew")
        header.grid_columnconfigure(0, weight=1)
        ctk.CTkLabel(
            header, text="Bone Fracture Detection", font=ctk.CTkFont(size=22, weight="bold")
        ).grid(row=0, column=0, padx=16, pady=10, sticky="w")
        self.info_button = ctk.CTkButton(header, text="About", width=90, command=self.show_about)
        self.info_button.grid(row=0, column=1, padx=16, pady=10)

        self.banner = ctk.CTkLabel(
            self, text="", text_color="white", fg_color="#b71c1c", wraplength=800, corner_radius=6
        )

        preview = ctk.CTkFrame(self)
        preview.grid(row=2, column=0, padx=(16, 8), pady=12, sticky="nsew")
        preview.grid_columnconfigure(0, weight=1)
        preview.grid_rowconfigure(0, weight=1)
        self.image_label = ctk.CTkLabel(preview, text="")
        self.image_label.grid(row=0, column=0, padx=10, pady=(10, 4))
        self.file_label = ctk.CTkLabel(preview, text="No image loaded", wraplength=420)
        self.file_label.grid(row=1, column=0, padx=10, pady=(0, 10))
        self._show_preview(Image.open(IMAGES / "placeholder.png"))
        # Tk frees its photo colour table whenever no image uses it and asks the X server for
        # every colour again for the next preview; a 1-pixel image on a hidden label keeps it.
        self._colour_keeper = ImageTk.PhotoImage(Image.new("RGB", (1, 1)))
        tk.Label(self, image=self._colour_keeper)

        side = ctk.CTkFrame(self)
        side.grid(row=2, column=1, padx=(8, 16), pady=12, sticky="nsew")
        side.grid_columnconfigure(0, weight=1)
        uploads = ctk.CTkFrame(side, fg_color="transparent")  # one row, leaving room for results
        uploads.grid(row=0, column=0, padx=12, pady=(12, 4), sticky="ew")
        uploads.grid_columnconfigure((0, 1), weight=1, uniform="uploads")
        self.upload_button = ctk.CTkButton(uploads, text="Upload Image", command=self.upload)
        self.upload_button.grid(row=0, column=0, padx=(0, 4), sticky="ew")
        self.study_button = ctk.CTkButton(uploads, text="Upload Study", command=self.upload_study)
        self.study_button.grid(row=0, column=1, padx=(4, 0), sticky="ew")
        self.folder_button = ctk.CTkButton(uploads, text="Open Folder", command=self.open_folder)
        self.folder_button.grid(row=1, column=0, padx=(0, 4), pady=(6, 0), sticky="ew")
        self.files_button = ctk.CTkButton(uploads, text="Open Files", command=self.open_files)
        self.files_button.grid(row=1, column=1, padx=(4, 0), pady=(6, 0), sticky="ew")
        controls = ctk.CTkFrame(side, fg_color="transparent")  # bone selector, then Predict
        controls.grid(row=2, column=0, padx=12, pady=4, sticky="ew")
        controls.grid_columnconfigure(1, weight=1)
        ctk.CTkLabel(controls, text="Bone").grid(row=0, column=0, padx=(0, 8), sticky="w")
        self.bone_selector = ctk.CTkSegmentedButton(
            controls, values=[AUTO, *BONES], command=self._on_bone_selected
        )
        self.bone_selector.set(AUTO)
        self.bone_selector.grid(row=0, column=1, sticky="ew")
        self.predict_button = ctk.CTkButton(controls, text="Predict", command=self.predict)
        self.predict_button.grid(row=1, column=0, columnspan=2, pady=(8, 0), sticky="ew")
        toggles = ctk.CTkFrame(side, fg_color="transparent")
        toggles.grid(row=3, column=0, padx=12, pady=6, sticky="w")
        self.heatmap_switch = ctk.CTkSwitch(
            toggles, text="Show heatmap", command=self.toggle_heatmap
        )
        self.heatmap_switch.grid(row=0, column=0, padx=(0, 12), sticky="w")
        self.boxes_switch = ctk.CTkSwitch(toggles, text="Show boxes", command=self.refresh_preview)
        self.boxes_switch.select()  # fracture boxes are part of the result unless switched off
        self.boxes_switch.grid(row=0, column=1, sticky="w")
        self.progress = ctk.CTkProgressBar(side, mode="indeterminate")
        self.status_label = ctk.CTkLabel(side, text="", wraplength=300, justify="left")
        self.status_label.grid(row=5, column=0, padx=12, pady=2, sticky="w")
        self.type_label = ctk.CTkLabel(
            side, text="", font=ctk.CTkFont(size=16), wraplength=300, justify="left"
        )
        self.type_label.grid(row=6, column=0, padx=12, pady=(10, 2), sticky="w")
        self.result_label = ctk.CTkLabel(
            side, text="", font=ctk.CTkFont(size=18, weight="bold"), wraplength=300, justify="left"
        )
        self.result_label.grid(row=7, column=0, padx=12, pady=2, sticky="w")
        self.detail_label = ctk.CTkLabel(side, text="", wraplength=300, justify="left")
        self.detail_label.grid(row=8, column=0, padx=12, pady=2, sticky="w")
        self.note_label = ctk.CTkLabel(
            side, text="", text_color=(AMBER, NOTE_ON_DARK), wraplength=300, justify="left"
        )  # shown in row 9 when there is a note
        self.side_texts = [
            self.status_label,
            self.type_label,
            self.result_label,
            self.detail_label,
            self.note_label,
        ]
        side.bind("<Configure>", self._fit_side_texts, add="+")
        self.offer_frame = ctk.CTkFrame(side, fg_color="transparent")  # row 10: no verdict
        ctk.CTkLabel(self.offer_frame, text="Analyse as").grid(row=0, column=0, padx=(0, 6))
        self.offer_buttons = {}
        for column, bone in enumerate(BONES, start=1):
            self.offer_frame.grid_columnconfigure(column, weight=1)
            button = ctk.CTkButton(
                self.offer_frame,
                text=bone,
                width=60,
                command=lambda choice=bone: self.analyse_as(choice),
            )
            button.grid(row=0, column=column, padx=2, sticky="ew")
            self.offer_buttons[bone] = button
        self.save_row = ctk.CTkFrame(side, fg_color="transparent")  # Save Result [+ DICOM]
        self.save_row.grid_columnconfigure((0, 1), weight=1)
        self.save_button = ctk.CTkButton(
            self.save_row, text="Save Result", command=self.save_result
        )
        self.save_button.grid(row=0, column=0, sticky="ew")
        self.dicom_button = ctk.CTkButton(
            self.save_row, text="Save DICOM result", command=self.save_dicom_result
        )

        ctk.CTkLabel(self, text=DISCLAIMER, font=ctk.CTkFont(size=12), wraplength=820).grid(
            row=4, column=0, columnspan=2, padx=16, pady=(0, 10)
        )

    def _bind_keys(self) -> None:
        self.bind("<Control-o>", lambda _event: self.upload())
        self.bind("<Return>", lambda _event: self.predict())
        self.bind("<KP_Enter>", lambda _event: self.predict())
        self.bind("<Control-s>", lambda _event: self.save_result())
        self.bind("<Down>", lambda event: self.worklist and self.worklist.key_move(event, 1))
        self.bind("<Up>", lambda event: self.worklist and self.worklist.key_move(event, -1))

    # ------------------------------------------------------------------ dialogs (patched in tests)

    def ask_open_file(self) -> str:
        """File dialog for one X-ray, starting in the sample folder."""
        return filedialog.askopenfilename(
            parent=self, title="Open an X-ray", initialdir=SAMPLES, filetypes=FILE_TYPES
        )

    def ask_open_files(self) -> tuple[str, ...]:
        """File dialog for the 1-3 views of one study."""
        return filedialog.askopenfilenames(
            parent=self,
            title="Open the views of one study",
            initialdir=SAMPLES,
            filetypes=FILE_TYPES,
        )

    def ask_folder(self) -> str:
        """Folder dialog for the worklist."""
        return filedialog.askdirectory(
            parent=self, title="Open a folder of X-rays", initialdir=SAMPLES, mustexist=True
        )

    def ask_worklist_files(self) -> tuple[str, ...]:
        """File dialog for any number of X-rays, for the worklist."""
        return filedialog.askopenfilenames(
            parent=self,
            title="Open X-rays for the worklist",
            initialdir=SAMPLES,
            filetypes=FILE_TYPES,
        )

    def ask_report_file(self, kind: str) -> str:
        """Save dialog for the worklist's CSV or PDF report."""
        suffix, name = {"csv": (".csv", "CSV file"), "pdf": (".pdf", "PDF report")}[kind]
        return filedialog.asksaveasfilename(
            parent=self,
            title=f"Save the worklist as {name}",
            initialfile=f"worklist{suffix}",
            defaultextension=suffix,
            filetypes=[(name, f"*{suffix}")],
        )

    def ask_output_folder(self) -> str:
        """Folder dialog for a DICOM result (a new file; the source is never changed)."""
        return filedialog.askdirectory(
            parent=self, title="Save the DICOM result in", mustexist=True
        )

    def ask_save_file(self, default_name: str) -> str:
        """Save dialog for the screenshot (the app itself asks before replacing a file, once,
        also when it adds the .png suffix, so Tk's own question is turned off)."""
        return filedialog.asksaveasfilename(
            parent=self,
            title="Save result as PNG",
            initialfile=default_name,
            defaultextension=".png",
            filetypes=[("PNG image", "*.png")],
            confirmoverwrite=False,
        )

    def ask_replace(self, path: Path) -> bool:
        """The one question before replacing an existing file."""
        return messagebox.askyesno(
            "Replace file?", f"'{path.name}' exists. Replace it?", parent=self
        )

    def show_error(self, title: str, message: str) -> None:
        """An error dialog with what to do next."""
        messagebox.showerror(title, message, parent=self)

    def show_message(self, title: str, message: str) -> None:
        """An information dialog."""
        messagebox.showinfo(title, message, parent=self)

    def _fit_side_texts(self, event: tk.Event) -> None:
        """Wrap the result texts at the side panel's width, whatever the window's size, so a
        long note is never cut off at the panel's edges."""
        scaling = ctk.ScalingTracker.get_widget_scaling(self)
        width = max(int(event.width / scaling) - SIDE_TEXT_MARGIN, 120)
        for label in self.side_texts:
            if label.cget("wraplength") != width:
                label.configure(wraplength=width)

    def show_about(self) -> None:
        """The info window: use, training data, measured accuracy, limits."""
        about = ctk.CTkToplevel(self)
        about.title("About Bone Fracture Detection")
        about.geometry("640x520")
        box = ctk.CTkTextbox(about, wrap="word")
        box.pack(fill="both", expand=True, padx=12, pady=12)
        box.insert("1.0", info_text(self.weights_dir))
        box.configure(state="disabled")
        about.transient(self)
        self.about_window = about

    # ------------------------------------------------------------------ actions

    def upload(self) -> None:
        """Choose one X-ray and preview it."""
        if self._opening or (self.worker.busy and not self.uploads_allowed):
            return
        chosen = self.ask_open_file()
        if chosen:
            self._load([Path(chosen)])

    def upload_study(self) -> None:
        """Choose several views of one study and preview the first."""
        if self._opening or (self.worker.busy and not self.uploads_allowed):
            return
        chosen = self.ask_open_files()
        if chosen:
            self._load([Path(item) for item in chosen])

    def open_folder(self) -> None:
        """Analyse every X-ray beneath a folder into the worklist."""
        chosen = self.ask_folder()
        if chosen:
            self.start_worklist([chosen])

    def open_files(self) -> None:
        """Analyse the chosen X-rays into the worklist."""
        chosen = self.ask_worklist_files()
        if chosen:
            self.start_worklist(list(chosen))

    def start_worklist(self, inputs: list[str]) -> None:
        """Show the worklist panel (the window grows to fit it) and start its analysis."""
        if self.worklist is None:
            self.worklist = WorklistPanel(
                self,
                self.show_worklist_row,
                self._set_worklist_bone,
                self._can_show_row,
                self.export_worklist,
            )
            self.worklist.grid(row=3, column=0, columnspan=2, padx=16, pady=(0, 8), sticky="nsew")
            width = min(max(self.winfo_width(), 1280), self.winfo_screenwidth())
            height = min(max(self.winfo_height(), 800), self.winfo_screenheight() - 40)
            self.geometry(f"{width}x{height}")
        self.worklist.start(inputs, self.weights_dir)

    def show_worklist_row(self, row: Row) -> None:
        """Show a worklist file exactly as Upload Image and Predict would (the same calls)."""
        if row.result is None:
            self._show_failed(row)
            return
        if not self._load([row.path]):
            return
        chosen = row.result.bone_source == CHOSEN
        self.bone_selector.set(row.result.bone if chosen else AUTO)
        self._on_prediction(row.result, None)

    def _show_failed(self, row: Row) -> None:
        """A file that could not be analysed: its name and why, no image."""
        self.paths, self.gray, self.preview_image = [], None, None
        self._show_preview(Image.open(IMAGES / "placeholder.png"))
        self.file_label.configure(text=row.path.name)
        self._clear_result()
        self.result_label.configure(text=row.error_title, text_color=AMBER)
        self.detail_label.configure(text=row.error)

    def export_worklist(self, kind: str) -> None:
        """Write the worklist as CSV or PDF ("csv", "pdf"), or the chosen DICOM row's result as a
        Secondary Capture ("dicom"), in the worker thread."""
        if self.worker.busy or self.worklist is None or not self.worklist.rows:
            return
        row = self.worklist.selected_row()
        if kind == "dicom" and (row is None or row.result is None):
            return
        chosen = self.ask_output_folder() if kind == "dicom" else self.ask_report_file(kind)
        if not chosen:
            return
        results, weights = self.worklist.results(), self.weights_dir

        def job() -> str:
            if kind == "csv":
                from reports.csv_report import write_csv

                return str(write_csv(results, chosen))
            if kind == "pdf":
                from reports.pdf_report import write_pdf

                return str(write_pdf(results, chosen, weights))
            from reports.secondary_capture import write_result_captures

            return "\n".join(str(path) for path in write_result_captures(row.result, chosen))

        what = {"csv": "CSV file", "pdf": "PDF report", "dicom": "DICOM result"}[kind]
        self._run(
            job,
            lambda written, error: self._on_export(what, written, error),
            f"Writing the {what}…",
        )

    def _on_export(self, what: str, written: str | None, error: BaseException | None) -> None:
        self._set_busy(False)
        if error is not None:
            self._report(error)
            return
        self.status_label.configure(text=f"{what} saved")
        self.show_message(f"{what} saved", f"The {what} was written to:\n{written}")

    def _set_worklist_bone(self, _row: Row, bone: str) -> None:
        self.analyse_as(bone)  # the row is shown: its new result comes back through the hook

    def _can_show_row(self) -> bool:
        return not self._opening and not self.worker.busy

    def _load(self, paths: list[Path]) -> bool:
        """Decode the files in a thread while the window keeps responding, then preview them;
        any failure, typed or not, is shown in a dialog. True if they were loaded."""
        self._opening = True
        outcome: dict = {}

        def job() -> None:
            try:
                outcome["value"] = _decode_for_preview(paths)
            except Exception as error:  # noqa: BLE001 - shown in a dialog below
                outcome["error"] = error

        thread = threading.Thread(target=job, daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                self.update()  # redraw and handle events while the file is decoded
                thread.join(0.01)
        except TclError:  # the window was closed while the file was opening
            return False
        finally:
            self._opening = False
        if "error" in outcome:
            self._report(outcome["error"])
            return False
        gray, preview = outcome["value"]
        self.paths, self.gray, self.result, self.overlay_image = paths, gray, None, None
        self.preview_image = preview
        self._show_preview(preview)
        names = paths[0].name if len(paths) == 1 else f"Study: {', '.join(p.name for p in paths)}"
        self.file_label.configure(text=names)
        self.bone_selector.set(AUTO)  # a bone chosen for the previous image must not carry over
        self._clear_result()
        return True

    def predict(self) -> None:
        """Run the two-stage prediction in the worker thread, with the bone chosen (if any)."""
        if self.worker.busy or self._opening:
            return
        if not self.paths:
            self.show_message("No image", "Upload an X-ray first (Upload Image or Ctrl+O).")
            return
        paths, weights = list(self.paths), self.weights_dir
        choice = self.bone_selector.get()
        bone = choice if choice in BONES else None

        def job():
            import predictions

            if len(paths) == 1:
                return predictions.analyze(paths[0], weights, bone=bone)
            return predictions.analyze_study(paths, weights, bone=bone)

        status = "Analysing the X-ray…" if bone is None else f"Analysing as {bone}…"
        self._run(job, self._on_prediction, status)

    def analyse_as(self, bone: str) -> None:
        """Set the bone (from the result panel's offer) and run its fracture model."""
        if self.worker.busy:
            return
        self.bone_selector.set(bone)
        self.predict()

    def _on_bone_selected(self, _choice: str) -> None:
        """A new choice re-runs the analysis when a result is shown (it would be stale)."""
        if self.result is not None:
            self.predict()

    def toggle_heatmap(self) -> None:
        """Show the Grad-CAM overlay (computed once, when first asked for) or the plain image."""
        if self._opening:  # a new image is opening: the old result's heatmap must not follow it
            self.heatmap_switch.deselect()
            return
        if not self.heatmap_switch.get():
            self.refresh_preview()
            return
        if self.result is None:
            self.show_message(
                "No result yet", "Press Predict first; the heatmap explains a result."
            )
            self.heatmap_switch.deselect()
            return
        if not self.result.recognised:
            self.show_message(
                "No fracture verdict",
                "The image was not recognised, so there is no fracture result to explain. "
                "Choose the bone (Analyse as) to get a verdict and its heatmap.",
            )
            self.heatmap_switch.deselect()
            return
        if self.overlay_image is not None:
            self.refresh_preview()
            return
        path, bone, weights = self.paths[0], self.result.bone, self.weights_dir

        def job():
            import predictions

            overlay = predictions.explain(path, bone, weights).overlay
            overlay.thumbnail(self.preview_image.size)  # scaled here, not on the Tk thread
            return overlay

        self._run(job, self._on_heatmap, "Computing the heatmap…")

    def save_dicom_result(self) -> None:
        """Save the shown result of a DICOM upload as a DICOM Secondary Capture (a new series
        beside the original, which is never changed), in the worker thread."""
        if self.result is None or self.worker.busy:
            return
        chosen = self.ask_output_folder()
        if not chosen:
            return
        result = self.result

        def job() -> str:
            from reports.secondary_capture import write_result_captures

            return "\n".join(str(path) for path in write_result_captures(result, chosen))

        self._run(
            job,
            lambda written, error: self._on_export("DICOM result", written, error),
            "Writing the DICOM result…",
        )

    def save_result(self) -> None:
        """Save a screenshot of the whole window as PNG."""
        if self.result is None or self.worker.busy:
            return
        chosen = self.ask_save_file(default_screenshot_name(self.result))
        if not chosen:
            return
        path = Path(chosen)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        if path.exists() and not self.ask_replace(path):
            return
        self.lift()
        self.update()
        try:
            save_screenshot(self, path)
        except OSError as error:
            reason = error.strerror or str(error)
            self.show_error(
                "Could not save the result",
                f"The screenshot could not be written to '{path}' ({reason}). "
                "Nothing was lost: choose another folder or free some disk space, then Save again.",
            )
            return
        except Exception as error:  # noqa: BLE001 - screen capture can fail in many ways
            self.show_error(
                "Could not capture the window",
                f"The screen could not be captured ({type(error).__name__}). "
                "Use your system's screenshot tool instead.",
            )
            return
        self.status_label.configure(text=f"Saved to\n{wrap_path(path, 40)}")
        self.show_message(
            "Result saved",
            f"The screenshot {path.name} was saved in the folder:\n{wrap_path(path.parent)}",
        )

    # ------------------------------------------------------------------ worker plumbing

    def _run(self, job, on_done, status: str, allow_upload: bool = False) -> None:
        self._set_busy(True, status, allow_upload)
        self.worker.start(job, on_done)

    def _poll(self) -> None:
        self.worker.poll()
        self.after(50, self._poll)

    def _set_busy(self, busy: bool, status: str = "", allow_upload: bool = False) -> None:
        """Disable the buttons that would conflict with the running job (uploading an image
        does not conflict with loading the models)."""
        state = "disabled" if busy else "normal"
        self.uploads_allowed = allow_upload
        for button in (self.predict_button, self.save_button, self.dicom_button):
            button.configure(state=state)
        for button in (
            self.upload_button,
            self.study_button,
            self.folder_button,
            self.files_button,
        ):
            button.configure(state="normal" if allow_upload else state)
        self.heatmap_switch.configure(state=state)
        self.boxes_switch.configure(state=state)
        self.bone_selector.configure(state="normal" if allow_upload else state)
        for button in self.offer_buttons.values():
            button.configure(state=state)
        if busy:
            self.progress.grid(row=4, column=0, padx=12, pady=6, sticky="ew")
            self.progress.start()
        else:
            self.progress.stop()
            self.progress.grid_remove()
        self.status_label.configure(text=status)

    def _on_prediction(self, result, error) -> None:
        self._set_busy(False)
        if error is not None:
            self._report(error)
            return
        self.result = result
        self.overlay_image = None  # the bone may have changed: the heatmap is recomputed
        text = describe(result)
        self.type_label.configure(text=text.type_text)
        self.result_label.configure(text=text.result_text, text_color=text.result_colour)
        self.detail_label.configure(text=text.detail_text)
        self.note_label.configure(text=text.note_text)
        if text.note_text:
            self.note_label.grid(row=9, column=0, padx=12, pady=2, sticky="w")
        else:
            self.note_label.grid_remove()
        if text.offer_bones:
            self.offer_frame.grid(row=10, column=0, padx=12, pady=(6, 2), sticky="ew")
        else:
            self.offer_frame.grid_remove()
        self.result_status = f"Done in {result.seconds:.2f} s"
        self.status_label.configure(text=self.result_status)
        if self.worklist is not None:
            self.worklist.result_changed(result)  # a worklist file analysed again
        self.save_row.grid(row=11, column=0, padx=12, pady=(12, 12), sticky="ew")
        dicom = self.worklist is None and any(is_dicom_file(path) for path in self.paths)
        self.save_button.grid(row=0, column=0, columnspan=1 if dicom else 2, sticky="ew")
        if dicom:  # (the worklist has its own button for its chosen row)
            self.dicom_button.grid(row=0, column=1, padx=(8, 0), sticky="ew")
        else:
            self.dicom_button.grid_remove()
        if self.heatmap_switch.get():
            self.toggle_heatmap()
        else:
            self.refresh_preview()

    def _on_heatmap(self, overlay, error) -> None:
        self._set_busy(False)
        if error is not None:
            self.heatmap_switch.deselect()
            self._report(error)
            return
        self.overlay_image = overlay
        self.status_label.configure(
            text=f"{self.result_status}. Heatmap: where the fracture model looked."
        )
        self.refresh_preview()

    def _report(self, error: BaseException) -> None:
        if isinstance(error, TriageError):
            self.show_error(error.title, str(error))
            return
        traceback.print_exception(error, file=sys.stderr)
        self.show_error(
            "Unexpected problem",
            f"The analysis failed unexpectedly ({type(error).__name__}). Nothing was saved or "
            "changed. Try again; if it keeps failing, report it with the image type you used.",
        )

    # ------------------------------------------------------------------ helpers

    def _check_weights(self) -> None:
        try:
            read_manifest(self.weights_dir)
        except ModelError:
            self.banner.configure(text=MISSING_WEIGHTS)
            self.banner.grid(row=1, column=0, columnspan=2, padx=16, pady=(8, 0), sticky="ew")
            return

        def load_models():
            from core.engine import get_engine

            return get_engine(self.weights_dir)

        self._run(load_models, self._on_models_loaded, "Loading the models…", allow_upload=True)

    def _on_models_loaded(self, _engine, error) -> None:
        self._set_busy(False)
        if error is not None:
            self.banner.configure(text=f"{MISSING_WEIGHTS}\n({error})")
            self.banner.grid(row=1, column=0, columnspan=2, padx=16, pady=(8, 0), sticky="ew")
            return
        self.models_ready = True
        self.status_label.configure(text="Models ready.")

    def _clear_result(self) -> None:
        self.result = None
        self.overlay_image = None
        self.heatmap_switch.deselect()
        for label in (self.type_label, self.result_label, self.detail_label, self.note_label):
            label.configure(text="")
        self.note_label.grid_remove()
        self.offer_frame.grid_remove()
        self.save_row.grid_remove()
        self.status_label.configure(text="")

    def refresh_preview(self) -> None:
        """The X-ray (or its heatmap overlay), with the result's fracture boxes when switched on.
        With the boxes on and no region above the threshold, the detail line says so."""
        if self.preview_image is None:
            return
        heatmap = self.heatmap_switch.get() and self.overlay_image is not None
        image = self.overlay_image if heatmap else self.preview_image
        recognised = self.result is not None and self.result.recognised
        boxes = shown_boxes(self.result) if recognised else ()  # no verdict, no fracture boxes
        if self.boxes_switch.get() and boxes:
            image = draw_boxes(image, boxes, self.gray.shape)
        self._show_preview(image)
        if recognised:
            self.detail_label.configure(
                text=describe(self.result, self.boxes_switch.get()).detail_text
            )

    def _show_preview(self, image: Image.Image) -> None:
        scale = min(PREVIEW_HEIGHT / image.height, PREVIEW_MAX_WIDTH / image.width)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        self._preview = ctk.CTkImage(light_image=image, dark_image=image, size=size)
        self.image_label.configure(image=self._preview)


def _decode_for_preview(paths: list[Path]):
    """Read every chosen file (a bad one is reported now, not at Predict) and make the preview's
    small copy; runs off the Tk thread."""
    gray = read_xray(paths[0])
    for extra in paths[1:]:
        read_xray(extra)
    preview = Image.fromarray((gray * 255).astype("uint8"))
    preview.thumbnail((2 * PREVIEW_MAX_WIDTH, 2 * PREVIEW_HEIGHT))  # sharp on 2x displays too
    return gray, preview


def run(weights_dir: str | Path | None = None) -> None:
    """Open the window and run the Tk main loop."""
    ctk.set_appearance_mode("system")
    ctk.set_default_color_theme("blue")
    FractureApp(weights_dir).mainloop()
