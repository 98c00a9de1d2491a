"""MediaPipe networks in torch vs TFLite (ai-edge-litert, XNNPACK), and the whole BlazePose graph.

Run: ``python benchmarks/bench_mediapipe.py DIR [--repeat 10] [--threads N]`` where DIR holds the five files
of ``mycloset fetch mediapipe DIR``. CPU, float32, batch 1, the astronaut photo prepared as each graph
prepares it; median of ``--repeat`` runs after one warm-up. Prints, per network, torch and TFLite forward
times and their ratio, then the full pose graph (detector, ROI, landmarks, refinement, projection, mask
warped to the photo) and the selfie mask at photo size. Nothing is asserted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from timing import timed

from mycloset_assets.checkpoints import load_model
from mycloset_assets.vision.images import load_image
from mycloset_assets.vision.mediapipe import Roi, crop_roi, letterbox_roi, to_tensor_range
from mycloset_assets.wrappers.mediapipe_pose import BlazePoseEstimator
from mycloset_assets.wrappers.mediapipe_segmentation import SelfieSegmenter

PHOTO = Path(__file__).parents[1] / "mycloset_assets" / "demo_data" / "astronaut.png"
FILES = {
    "mediapipe_pose_detection": ("pose_detection.tflite", 224, (-1.0, 1.0)),
    "mediapipe_pose_landmark_full": ("pose_landmark_full.tflite", 256, (0.0, 1.0)),
    "mediapipe_selfie_segmentation": ("selfie_segmentation.tflite", 256, (0.0, 1.0)),
    "mediapipe_face_detection_short_range": ("face_detection_short_range.tflite", 128, (-1.0, 1.0)),
    "mediapipe_face_landmark": ("face_landmark.tflite", 192, (0.0, 1.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    from ai_edge_litert.interpreter import Interpreter

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    photo = load_image(PHOTO).pixels
    print(f"threads {args.threads}, repeat {args.repeat}, photo {photo.shape[1]}x{photo.shape[0]}")
    print(f"{'network':40s} {'torch ms':>9s} {'tflite ms':>10s} {'ratio':>6s}")
    for entry, (name, size, (low, high)) in FILES.items():
        path = args.directory / name
        module = load_model(path).module
        roi = letterbox_roi(*photo.shape[:2]) if low < 0 else Roi(256.0, 256.0, 512.0, 512.0)
        tensor = to_tensor_range(crop_roi(photo, roi, size, "zero"), low, high)[None]
        batch = torch.from_numpy(tensor)
        interpreter = Interpreter(model_path=str(path), num_threads=args.threads)
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]
        interpreter.set_tensor(index, tensor.transpose(0, 2, 3, 1).copy())

        def forward(module=module, batch=batch) -> None:
            with torch.inference_mode():
                module(batch)

        forward()
        interpreter.invoke()
        mine = timed(forward, args.repeat) * 1000
        theirs = timed(interpreter.invoke, args.repeat) * 1000
        print(f"{entry:40s} {mine:9.1f} {theirs:10.1f} {mine / theirs:6.2f}")
    estimator = BlazePoseEstimator(
        load_model(args.directory / FILES["mediapipe_pose_detection"][0]),
        load_model(args.directory / FILES["mediapipe_pose_landmark_full"][0]),
    )
    estimator.estimate(photo)
    graph = timed(lambda: estimator.estimate(photo), args.repeat) * 1000
    people = len(estimator.estimate(photo))
    print(f"{'BlazePose graph (512x512 photo)':40s} {graph:9.1f} ms, {people} person")
    segmenter = SelfieSegmenter(load_model(args.directory / FILES["mediapipe_selfie_segmentation"][0]))
    segmenter(photo)
    mask = timed(lambda: segmenter(photo), args.repeat) * 1000
    print(f"{'selfie mask (512x512 photo)':40s} {mask:9.1f} ms, person {float(np.mean(segmenter(photo) > 0.5)):.1%}")


if __name__ == "__main__":
    main()
