"""The README's picture of what the real MediaPipe weights give on the bundled astronaut photo.

Run from the repository root: ``python scripts/readme_picture.py [--wheel mediapipe-0.10.21-...whl] [--out
docs/images/mediapipe_astronaut.jpg]``. Fetches the five ``.tflite`` files (pip download, or the wheel given) into
a temporary folder and draws, side by side: BlazePose's skeleton (as OpenPose-18), the selfie segmentation's
person mask, and BlazeFace's box with its six keypoints, 1024 pixels wide in all. Prints what it found.
"""

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mycloset_assets.checkpoints import load_model
from mycloset_assets.checkpoints.fetch import fetch_mediapipe
from mycloset_assets.package_data import demo_data_folder
from mycloset_assets.vision.drawing import draw_mask, draw_openpose18, side_by_side
from mycloset_assets.wrappers.mediapipe_face import FaceDetector
from mycloset_assets.wrappers.mediapipe_pose import BlazePoseEstimator
from mycloset_assets.wrappers.mediapipe_segmentation import SelfieSegmenter, person_mask

BOX_COLOUR = (0, 200, 0)
POINT_COLOUR = (255, 0, 0)
README_WIDTH = 1024


def draw_faces(image: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Face boxes and their keypoints drawn on a copy of ``image``."""
    canvas = image.copy()
    for box, points in zip(boxes, keypoints, strict=True):
        corners = np.rint(box).astype(int)
        cv2.rectangle(canvas, tuple(corners[:2]), tuple(corners[2:]), BOX_COLOUR, 2, cv2.LINE_AA)
        for x, y in np.rint(points).astype(int):
            cv2.circle(canvas, (x, y), 3, POINT_COLOUR, -1, cv2.LINE_AA)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="a downloaded mediapipe-0.10.21 wheel (default: pip download)")
    parser.add_argument("--out", default="docs/images/mediapipe_astronaut.jpg", help="the JPEG to write")
    args = parser.parse_args()
    photo = np.asarray(Image.open(demo_data_folder() / "astronaut.png").convert("RGB"))
    with tempfile.TemporaryDirectory() as folder:
        files = {path.stem: path for path in fetch_mediapipe(folder, args.wheel)}
        pose = BlazePoseEstimator(load_model(files["pose_detection"]), load_model(files["pose_landmark_full"]))
        found = pose.estimate(photo)
        probability = SelfieSegmenter(load_model(files["selfie_segmentation"]))([photo])[0]
        faces = FaceDetector(load_model(files["face_detection_short_range"])).detect(photo)
    mask = person_mask(probability) > 0
    picture = side_by_side(
        draw_openpose18(photo, found.openpose18, threshold=0.5),
        draw_mask(photo, mask, color=(0, 120, 255), alpha=0.5),
        draw_faces(photo, faces.boxes, faces.keypoints),
    )
    scale = README_WIDTH / picture.shape[1]
    picture = cv2.resize(picture, (README_WIDTH, round(picture.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(out, quality=88)
    visible = int((found.openpose18[0, :, 2] > 0.5).sum()) if len(found) else 0
    box = np.round(faces.boxes[:1], 1).tolist()
    print(f"{out}: {len(found)} person(s), {visible} of 18 keypoints with visibility > 0.5; person mask "
          f"{100 * mask.mean():.1f} % of the photo; {len(faces)} face(s), box {box}")  # fmt: skip


if __name__ == "__main__":
    main()
