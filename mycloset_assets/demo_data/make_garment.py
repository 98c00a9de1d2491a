"""Draw the demo's garment photo: a striped T-shirt on white, 192 x 256 like the try-on datasets' cloth images.

Run once; its output ``tshirt.png`` is committed beside it as data:
``python mycloset_assets/demo_data/make_garment.py``.
"""

from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 192, 256
BODY = (36, 72, 140)
STRIPE = (232, 236, 242)
OUTLINE = (20, 40, 84)

# Clockwise from the left of the neckline: shoulders, sleeves, armpits, hem.
OUTER = [
    (72, 28),
    (38, 40),
    (8, 86),
    (34, 104),
    (48, 82),
    (50, 232),
    (142, 232),
    (144, 82),
    (158, 104),
    (184, 86),
    (154, 40),
    (120, 28),
]
NECK = (74, 14, 118, 52)


def draw_tshirt() -> Image.Image:
    """The T-shirt: a blue body with white stripes, a collar cut-out and a dark outline."""
    shirt = Image.new("RGB", (WIDTH, HEIGHT), BODY)
    draw = ImageDraw.Draw(shirt)
    for top in range(70, HEIGHT, 28):
        draw.rectangle((0, top, WIDTH, top + 9), fill=STRIPE)
    mask = Image.new("L", (WIDTH, HEIGHT), 0)
    shape = ImageDraw.Draw(mask)
    shape.polygon(OUTER, fill=255)
    shape.ellipse(NECK, fill=0)
    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    image.paste(shirt, mask=mask)
    outline = ImageDraw.Draw(image)
    outline.polygon(OUTER, outline=OUTLINE, width=2)
    outline.arc(NECK, start=0, end=180, fill=OUTLINE, width=2)
    return image


if __name__ == "__main__":
    target = Path(__file__).with_name("tshirt.png")
    draw_tshirt().save(target, optimize=True)
    print(f"wrote {target}")
