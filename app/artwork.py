"""Draw the app's own artwork (icon and empty-preview placeholder): `python -m app.artwork`."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFilter

from core.paths import IMAGES


def bone_icon(size: int = 256) -> Image.Image:
    """A stylised long bone with a crack, white on a blue rounded square."""
    scale = 4
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big // 6, fill=(21, 101, 192, 255))
    white = (245, 245, 245, 255)
    shaft = big // 9
    draw.line((big * 0.3, big * 0.7, big * 0.7, big * 0.3), fill=white, width=shaft)
    for cx, cy in ((0.27, 0.78), (0.22, 0.73), (0.73, 0.22), (0.78, 0.27)):
        r = big * 0.085
        draw.ellipse((big * cx - r, big * cy - r, big * cx + r, big * cy + r), fill=white)
    crack = [(0.46, 0.45), (0.52, 0.50), (0.48, 0.53), (0.55, 0.58)]
    draw.line([(big * x, big * y) for x, y in crack], fill=(211, 47, 47, 255), width=big // 40)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def placeholder(width: int = 256, height: int = 256) -> Image.Image:
    """A soft dark panel with a faint bone outline, shown before an image is uploaded."""
    image = Image.new("RGB", (width, height), (40, 44, 52))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((8, 8, width - 9, height - 9), radius=16, outline=(90, 96, 110), width=3)
    faint = bone_icon(width // 2).convert("L").point(lambda v: v // 4)
    image.paste((70, 76, 90), (width // 4, height // 4), faint.filter(ImageFilter.GaussianBlur(1)))
    return image


def main() -> None:
    """Write the PNG and ICO files into images/."""
    IMAGES.mkdir(exist_ok=True)
    icon = bone_icon()
    icon.save(IMAGES / "icon.png")
    icon.save(IMAGES / "icon.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (256, 256)])
    placeholder().save(IMAGES / "placeholder.png")


if __name__ == "__main__":
    main()
