"""The worklist panel: progress, count and Cancel, and a sortable table of studies and files."""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable, Sequence
from pathlib import Path
from tkinter import ttk

import customtkinter as ctk

from app.formatting import AMBER, GREEN, RED
from app.worklist import COLUMNS, HEADINGS, SUSPICION, Group, Row, WorklistRun, arrange
from core.models import BONES
from predictions import Prediction
from reports.header import is_dicom_file
from reports.rows import Failure

POLL_MS = 100  # Cancel's answer and new events are looked at ten times a second
# While a run goes on, the count is redrawn at most every COUNT_S and the table every TABLE_S:
# with Xft fonts Tk 8.6 waits for the X server on every text it measures or draws, so one redraw
# of the table's visible cells costs some 90 round trips, which on a busy machine add up.
COUNT_S, TABLE_S = 0.3, 1.0
TAGS = {  # row tag -> (light, dark) text and background colours
    "fractured": ((RED, "#ef9a9a"), None),
    "normal": ((GREEN, "#a5d6a7"), None),
    "not_recognised": ((AMBER, "#ffcc80"), ("#ffe9c7", "#4a3a1d")),
    "failed": (("#5f5f5f", "#bdbdbd"), ("#ececec", "#3a3a3a")),
}
ROW_TAGS = ("fractured", "not_recognised", "normal", "failed")  # by Row.rank
WIDTHS = {"#0": 250, "bone": 170, "verdict": 150, "probability": 140, "error": 400}


class WorklistPanel(ctk.CTkFrame):
    """Analyses many files in the background and lists them, most suspicious first.

    `show_row(row)` is called with the row chosen in the table; `set_bone(row, bone)` when a
    bone is chosen for it from the context menu; `export(kind)` by the export buttons ("csv",
    "pdf", "dicom").
    """

    def __init__(
        self,
        master,
        show_row: Callable[[Row], None],
        set_bone: Callable[[Row, str], None],
        can_show: Callable[[], bool],
        export: Callable[[str], None],
    ) -> None:
        super().__init__(master)
        self.show_row, self.set_bone_of, self.can_show = show_row, set_bone, can_show
        self.export = export
        self.rows: dict[str, Row] = {}  # tree item id -> row
        self.run: WorklistRun | None = None
        self.finished = True
        self.total = 0
        self.started = 0.0
        self.seconds = 0.0
        self.cancelled = False
        self.sort_column, self.descending = SUSPICION, False
        self.shown: Row | None = None
        self._pending: str | None = None
        self._menu_item: str | None = None
        self._waiting: list[tuple[str, object]] = []  # events not yet shown in the table
        self._refreshed = self._counted = 0.0
        self._build()
        self.after(POLL_MS, self._poll)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.grid_columnconfigure(0, weight=1)
        self.grid_rowconfigure(1, weight=1)
        bar = ctk.CTkFrame(self, fg_color="transparent")
        bar.grid(row=0, column=0, columnspan=2, padx=8, pady=(8, 4), sticky="ew")
        bar.grid_columnconfigure(2, weight=1)
        ctk.CTkLabel(bar, text="Worklist", font=ctk.CTkFont(size=15, weight="bold")).grid(
            row=0, column=0, padx=(4, 12)
        )
        self.progress_value = tk.DoubleVar(self, 0.0)
        self.progress = ttk.Progressbar(  # ttk: drawn without text, unlike CTk's (see _style)
            bar,
            length=160,
            maximum=1.0,
            variable=self.progress_value,
            style="Worklist.Horizontal.TProgressbar",
        )
        self.progress.grid(row=0, column=1, padx=(0, 12))
        self.count_label = ctk.CTkLabel(bar, text="", anchor="w")
        self.count_label.grid(row=0, column=2, sticky="ew")
        self.cancel_button = ctk.CTkButton(
            bar, text="Cancel", width=90, command=self.cancel, state="disabled"
        )
        self.cancel_button.grid(row=0, column=3, padx=(8, 0))
        self.export_buttons = {}
        for column, (kind, text, width) in enumerate(
            (("csv", "Export CSV", 100), ("pdf", "Export PDF report", 140)), start=4
        ):
            button = ctk.CTkButton(
                bar, text=text, width=width, command=lambda k=kind: self.export(k), state="disabled"
            )
            button.grid(row=0, column=column, padx=(8, 0))
            self.export_buttons[kind] = button
        self.dicom_button = ctk.CTkButton(
            bar,
            text="Save DICOM result",
            width=140,
            command=lambda: self.export("dicom"),
            state="disabled",
        )
        self.dicom_button.grid(row=0, column=6, padx=(8, 0))

        self._style()
        self.tree = ttk.Treeview(
            self, columns=COLUMNS[1:], style="Worklist.Treeview", height=7, selectmode="browse"
        )
        for column in ("#0", *COLUMNS[1:]):
            name = "file" if column == "#0" else column
            self.tree.heading(column, text=HEADINGS[name], command=lambda c=name: self.sort_by(c))
            self.tree.column(column, width=WIDTHS[column], stretch=column == "error", anchor="w")
        self.tree.grid(row=1, column=0, padx=(8, 0), pady=(0, 8), sticky="nsew")
        scrollbar = ttk.Scrollbar(
            self, command=self.tree.yview, style="Worklist.Vertical.TScrollbar"
        )
        scrollbar.grid(row=1, column=1, padx=(0, 4), pady=(0, 8), sticky="ns")
        self.tree.configure(yscrollcommand=scrollbar.set)
        self.tree.bind("<<TreeviewSelect>>", self._on_select)
        self.tree.bind("<Button-3>", self._on_right_click)
        for key in ("<Shift-F10>", "<KeyPress-Menu>"):  # the same menu from the keyboard
            self.tree.bind(key, self._on_menu_key)
        self.menu = tk.Menu(self, tearoff=0)
        for bone in BONES:
            self.menu.add_command(
                label=f"Analyse as {bone}", command=lambda b=bone: self._menu_choice(b)
            )
        self._mark_heading()

    def _style(self) -> None:
        """ttk colours taken from the CustomTkinter theme, light or dark. The progress bar and
        the table are ttk widgets: with Xft fonts, Tk 8.6 waits for the X server on every text
        it measures, and CustomTkinter draws its rounded shapes with font glyphs, so a CTk
        progress bar redrawn ten times a second stalls the window on a busy machine."""
        dark = ctk.get_appearance_mode() == "Dark"
        pick = 1 if dark else 0
        theme = ctk.ThemeManager.theme
        background = theme["CTkFrame"]["fg_color"][pick]
        text = theme["CTkLabel"]["text_color"][pick]
        accent = theme["CTkButton"]["fg_color"][pick]
        style = ttk.Style(self)
        style.theme_use("clam")
        style.configure(
            "Worklist.Treeview",
            background=background,
            fieldbackground=background,
            foreground=text,
            rowheight=24,
            borderwidth=0,
        )
        style.configure(
            "Worklist.Treeview.Heading",
            background=accent,
            foreground="white",
            relief="flat",
            padding=(6, 3),
        )
        style.map("Worklist.Treeview.Heading", background=[("active", accent)])
        style.configure(
            "Worklist.Horizontal.TProgressbar",
            background=accent,
            troughcolor=theme["CTkProgressBar"]["fg_color"][pick],
            bordercolor=background,
            lightcolor=accent,
            darkcolor=accent,
            thickness=10,
        )
        style.configure(
            "Worklist.Vertical.TScrollbar",
            background=theme["CTkScrollbar"]["button_color"][pick],
            troughcolor=background,
            bordercolor=background,
            arrowcolor=text,
        )
        style.map(
            "Worklist.Treeview",
            background=[("selected", accent)],
            foreground=[("selected", "white")],
        )
        self._tag_colours = {
            tag: (colours[pick], backgrounds[pick] if backgrounds else None)
            for tag, (colours, backgrounds) in TAGS.items()
        }

    def _configure_tags(self) -> None:
        for tag, (colour, background) in self._tag_colours.items():
            options = {"foreground": colour}
            if background:
                options["background"] = background
            self.tree.tag_configure(tag, **options)
        self.tree.tag_configure("group", font=ctk.CTkFont(weight="bold"))

    # ------------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        """True from `start` until the run's last event is shown."""
        return self.run is not None and not self.finished

    def start(self, inputs: Sequence[str | Path], weights_dir: str | Path | None = None) -> bool:
        """Clear the table and analyse every X-ray in `inputs` (files or folders)."""
        if self.running:
            return False
        self.tree.delete(*self.tree.get_children())
        self._configure_tags()
        self.rows.clear()
        self.shown, self._pending, self.total, self.cancelled = None, None, 0, False
        self.finished, self._waiting = False, []
        self.progress_value.set(0)
        self.count_label.configure(text="Looking for X-rays…")
        self.cancel_button.configure(state="normal")
        for button in (*self.export_buttons.values(), self.dicom_button):
            button.configure(state="disabled")
        self.started = time.perf_counter()
        self.run = WorklistRun(inputs, weights_dir).start()
        return True

    def destroy(self) -> None:
        """The window closes: end the analysis process too."""
        if self.run is not None:
            self.run.stop()
        super().destroy()

    def cancel(self) -> None:
        """Stop before the next file (the file being analysed finishes)."""
        if self.running:
            self.run.cancel()
            self.cancel_button.configure(state="disabled")
            self.count_label.configure(text=f"{self._counts()}; cancelling…")

    def _poll(self) -> None:
        if self.run is not None and not self.finished:
            self._waiting.extend(self.run.drain())
            ending = any(kind == "finished" for kind, _value in self._waiting)
            now = time.perf_counter()
            if self._waiting and (ending or now - self._refreshed >= TABLE_S):
                self._refresh()
            elif self._waiting and now - self._counted >= COUNT_S:
                self._show_count()
        if self._pending is not None and self.can_show():
            self.show(self._pending)
        self.after(POLL_MS, self._poll)

    def _refresh(self) -> None:
        """Show the events waiting: new rows in their places, the count, the end of the run."""
        events, self._waiting = self._waiting, []
        self._refreshed = time.perf_counter()
        ending = None
        for kind, value in events:
            if kind == "total":
                self.total = value
            elif kind == "row":
                self._insert(value)
            elif kind == "finished":
                ending = value
        if any(kind == "row" for kind, _value in events):
            self._sync()
        if ending is not None:
            self._finish(cancelled=ending)
        else:
            self._show_count()

    def _show_count(self) -> None:
        """The progress bar and the count, with the rows not yet in the table."""
        self._counted = time.perf_counter()
        for kind, value in self._waiting:
            if kind == "total":
                self.total = value
        self.progress_value.set(self._done() / self.total if self.total else 0)
        self.count_label.configure(text=self._counts())

    def _done(self) -> int:
        return len(self.rows) + sum(1 for kind, _value in self._waiting if kind == "row")

    def _finish(self, cancelled: bool) -> None:
        self.finished, self.cancelled = True, cancelled
        self.seconds = time.perf_counter() - self.started
        self.cancel_button.configure(state="disabled")
        for button in self.export_buttons.values():
            button.configure(state="normal" if self.rows else "disabled")
        self.progress_value.set(1 if not cancelled else len(self.rows) / max(self.total, 1))
        if self.run.crashed:
            self.count_label.configure(
                text=f"{self._counts()}; the analysis stopped unexpectedly. Open the folder again."
            )
            return
        if not self.total:
            self.count_label.configure(text="No X-ray images were found there.")
            return
        rate = len(self.rows) / self.seconds if self.seconds else 0.0
        ending = "cancelled" if cancelled else "done"
        self.count_label.configure(
            text=f"{self._counts()}; {ending} in {self.seconds:.1f} s ({rate:.1f} images/s)"
        )
        if not self.tree.selection() and self.tree.get_children():
            self.move(1)  # show the most suspicious

    def _counts(self) -> str:
        waiting = [value for kind, value in self._waiting if kind == "row"]
        failed = sum(1 for row in [*self.rows.values(), *waiting] if row.result is None)
        text = f"{self._done()} of {self.total} analysed"
        return text + (f", {failed} could not be read" if failed else "")

    # ------------------------------------------------------------------ table

    def _insert(self, row: Row) -> None:
        item = f"r{row.number}"
        self.rows[item] = row
        self.tree.insert("", "end", iid=item)
        self._fill(item, row)

    def _fill(self, item: str, row: Row) -> None:
        cells = row.cells()
        self.tree.item(
            item,
            text=cells["file"],
            values=[cells[c] for c in COLUMNS[1:]],
            tags=(ROW_TAGS[row.rank],),
        )

    def _sync(self) -> None:
        """Put every line in its place for the current order (groups created when needed);
        only lines out of place are moved, so a new file costs the screen little."""
        layout: dict[str, list[str]] = {"": []}
        for entry in arrange(self.rows.values(), self.sort_column, self.descending):
            if isinstance(entry, Group):
                group = self._group_item(entry)
                layout[""].append(group)
                layout[group] = [f"r{row.number}" for row in entry.rows]
            else:
                layout[""].append(f"r{entry.number}")
        for parent, wanted in layout.items():
            current = list(self.tree.get_children(parent))
            for index, item in enumerate(wanted):
                if index >= len(current) or current[index] != item:
                    self.tree.move(item, parent, index)
                    current = list(self.tree.get_children(parent))

    def _group_item(self, group: Group) -> str:
        item = "g" + str(abs(hash(group.key)))
        cells = group.cells()
        values = [cells[c] for c in COLUMNS[1:]]
        if not self.tree.exists(item):
            self.tree.insert("", "end", iid=item, open=True)
        self.tree.item(item, text=cells["file"], values=values, tags=("group",))
        return item

    def sort_by(self, column: str) -> None:
        """Sort on `column` (a header click); a second click on it reverses the order."""
        if column == self.sort_column:
            self.descending = not self.descending
        else:
            self.sort_column, self.descending = column, column == "probability"
        self._mark_heading()
        self._sync()
        selected = self.tree.selection()
        if selected:
            self.tree.see(selected[0])

    def _mark_heading(self) -> None:
        for column in ("#0", *COLUMNS[1:]):
            name = "file" if column == "#0" else column
            arrow = (" ▼" if self.descending else " ▲") if name == self.sort_column else ""
            self.tree.heading(column, text=HEADINGS[name] + arrow)

    def lines(self) -> list[str]:
        """Every line in the order shown (a group, then its files)."""
        found = []
        for item in self.tree.get_children():
            found.append(item)
            if self.tree.item(item, "open"):
                found.extend(self.tree.get_children(item))
        return found

    # ------------------------------------------------------------------ choosing rows

    def row_of(self, item: str) -> Row | None:
        """The row of a line; for a group, its first (most suspicious in this order) file."""
        if item in self.rows:
            return self.rows[item]
        children = self.tree.get_children(item) if self.tree.exists(item) else ()
        return self.rows.get(children[0]) if children else None

    def move(self, step: int) -> None:
        """Select the next (+1) or previous (-1) line and show its image."""
        lines = self.lines()
        if not lines:
            return
        current = self.tree.focus() or (self.tree.selection() or ("",))[0]
        index = lines.index(current) + step if current in lines else 0
        item = lines[max(0, min(len(lines) - 1, index))]
        self.tree.selection_set(item)
        self.tree.focus(item)
        self.tree.see(item)

    def key_move(self, event, step: int) -> str | None:
        """Up/Down anywhere in the window move through the list (the table moves by itself)."""
        if event.widget is self.tree or not self.rows:
            return None
        self.move(step)
        return "break"

    def _on_select(self, _event=None) -> None:
        selected = self.tree.selection()
        if selected:
            row = self.row_of(selected[0])
            dicom = row is not None and row.result is not None and is_dicom_file(row.path)
            self.dicom_button.configure(state="normal" if dicom and self.finished else "disabled")
            self.show(selected[0])

    def selected_row(self) -> Row | None:
        """The row of the line chosen (a group's first file)."""
        selected = self.tree.selection()
        return self.row_of(selected[0]) if selected else None

    def results(self) -> list[Prediction | Failure]:
        """Every file's result or failure, in the order shown (for the CSV and PDF reports)."""
        ordered = []
        for entry in arrange(self.rows.values(), self.sort_column, self.descending):
            ordered.extend(entry.rows if isinstance(entry, Group) else [entry])
        return [
            row.result if row.result is not None else Failure(str(row.path), row.error)
            for row in ordered
        ]

    def show(self, item: str) -> None:
        """Show the row's image and result in the window (later, if the window is busy)."""
        row = self.row_of(item)
        if row is None:
            return
        if not self.can_show():
            self._pending = item
            return
        self._pending = None
        if row is self.shown:
            return
        self.shown = row
        self.show_row(row)

    def result_changed(self, result: Prediction) -> None:
        """A new result for the file shown (a bone chosen for it): its row follows."""
        row = self.shown
        if row is None or not isinstance(result, Prediction) or result is row.result:
            return  # a study (Upload Study) is not a worklist row
        if Path(result.path) != row.path:
            return
        row.result, row.error_title, row.error = result, "", ""
        self._fill(f"r{row.number}", row)
        self._sync()
        self.tree.see(f"r{row.number}")

    def _on_right_click(self, event) -> None:
        item = self.tree.identify_row(event.y)
        if not item:
            return
        self.tree.selection_set(item)
        self.open_menu(item)
        self.menu.tk_popup(event.x_root, event.y_root)

    def _on_menu_key(self, _event) -> str:
        item = self.tree.focus()
        if item:
            x, y, _width, height = self.tree.bbox(item) or (0, 0, 0, 0)
            self.open_menu(item)
            self.menu.tk_popup(
                self.tree.winfo_rootx() + x + 40, self.tree.winfo_rooty() + y + height
            )
        return "break"

    def open_menu(self, item: str) -> None:
        """Prepare the bone menu for a line (a file that failed cannot be analysed again)."""
        self._menu_item = item
        row = self.row_of(item)
        state = "normal" if row is not None and row.result is not None else "disabled"
        for index in range(len(BONES)):
            self.menu.entryconfigure(index, state=state)

    def _menu_choice(self, bone: str) -> None:
        row = self.row_of(self._menu_item) if self._menu_item else None
        if row is not None and row.result is not None and self.can_show():
            self.shown = row
            self.show_row(row)
            self.set_bone_of(row, bone)
