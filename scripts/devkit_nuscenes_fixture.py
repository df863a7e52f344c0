"""Record nuscenes-devkit's boxes, velocities and camera projections on the generated fixture.

Run it in a separate environment that has the devkit (it needs numpy<2, which rsd does not
support, so the devkit is never a dependency of rsd)::

    python3 -m venv /tmp/h8-devkit
    /tmp/h8-devkit/bin/pip install nuscenes-devkit==1.2.0
    /tmp/h8-devkit/bin/python scripts/devkit_nuscenes_fixture.py \
        --out tests/fixtures/devkit_nuscenes.json

It builds the tiny nuScenes release of ``tests/datasets/nuscenes_fixture.py`` (numpy and the
standard library only, no rsd) in a temporary folder, opens it with ``nuscenes.NuScenes`` and
records, per sample annotation: the devkit's ``box_velocity`` (world frame), the box in the ego
frame of the sample's ``LIDAR_TOP`` data (``Box.translate`` / ``Box.rotate`` with that ego
pose, velocity rotated with it, yaw by ``nuscenes.eval.common.utils.quaternion_yaw``), and
its 8 corners projected into ``CAM_FRONT`` by ``NuScenes.get_sample_data`` + ``view_points``
(pixels) with their depths.
``tests/datasets/test_nuscenes.py`` compares ``rsd.datasets.nuscenes`` with these numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from nuscenes.eval.common.utils import quaternion_yaw
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import Box
from nuscenes.utils.geometry_utils import BoxVisibility, view_points
from pyquaternion import Quaternion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.datasets.nuscenes_fixture import VERSION, write_fixture  # noqa: E402


def _listed(a: np.ndarray) -> list | None:
    a = np.asarray(a, dtype=float)
    return None if np.isnan(a).any() else a.tolist()


def record(nusc: NuScenes) -> dict[str, dict]:
    """Per annotation token: the devkit's numbers (see the module doc)."""
    out: dict[str, dict] = {}
    for sample in nusc.sample:
        lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        pose = nusc.get("ego_pose", lidar["ego_pose_token"])
        _, cam_boxes, cam_k = nusc.get_sample_data(
            sample["data"]["CAM_FRONT"], box_vis_level=BoxVisibility.NONE
        )
        in_cam = {b.token: b for b in cam_boxes}
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            velocity = nusc.box_velocity(ann_token)
            box: Box = nusc.get_box(ann_token)
            box.velocity = velocity
            box.translate(-np.array(pose["translation"]))
            box.rotate(Quaternion(pose["rotation"]).inverse)
            cam_box = in_cam[ann_token]
            corners = cam_box.corners()
            out[ann_token] = {
                "sample": sample["token"],
                "instance": ann["instance_token"],
                "category": ann["category_name"],
                "velocity_world": _listed(velocity),
                "center_ego": box.center.tolist(),
                "wlh": box.wlh.tolist(),
                "yaw_ego": float(quaternion_yaw(box.orientation)),
                "velocity_ego": _listed(box.velocity),
                "corners_ego": box.corners().T.tolist(),
                "cam_uv": view_points(corners, np.array(cam_k), normalize=True)[:2].T.tolist(),
                "cam_depth": corners[2].tolist(),
                "cam_center_uv": view_points(cam_box.center[:, None], np.array(cam_k), True)[
                    :2, 0
                ].tolist(),
                "cam_center_depth": float(cam_box.center[2]),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/devkit_nuscenes.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import nuscenes

    with tempfile.TemporaryDirectory() as tmp:
        write_fixture(Path(tmp), seed=args.seed)
        nusc = NuScenes(version=VERSION, dataroot=tmp, verbose=False)
        result = {
            "devkit": getattr(nuscenes, "__version__", "1.2.0"),
            "seed": args.seed,
            "version": VERSION,
            "annotations": record(nusc),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result) + "\n")
    print(f"wrote {args.out}: {len(result['annotations'])} annotations")


if __name__ == "__main__":
    main()
