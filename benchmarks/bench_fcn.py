"""FCN vs patch-wise inference on a global 0.25° image (720×1440), land centres from global_land_mask."""
import time
import numpy as np
import torch
from global_land_mask import globe
from smray.models import PaperCNN, fcn_forward, patchwise_forward

torch.set_num_threads(2)
torch.manual_seed(0)
lat = 89.875 - 0.25 * np.arange(720)
lon = -179.875 + 0.25 * np.arange(1440)
land = globe.is_land(*np.meshgrid(lat, lon, indexing="ij"))
land &= (lat > -56)[:, None] & (lat < 54)[:, None]  # unfrozen land of a summer day, ~165k centres
valid = land[4:-4, 4:-4]
print("land centres:", int(valid.sum()))
img = np.random.default_rng(0).random((4, 720, 1440), dtype=np.float32)
model = PaperCNN(4).eval()

def best(fn, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return min(ts), out

t_patch, ref = best(lambda: patchwise_forward(model, img, valid), 3)
t_mask, got = best(lambda: fcn_forward(model, img, valid=valid), 3)
print(f"patch-wise      : {t_patch:6.2f} s")
print(f"fcn (land mask) : {t_mask:6.2f} s   max|diff| {np.nanmax(np.abs(got - ref)):.2e}")
t_dense, dense = best(lambda: fcn_forward(model, img), 1)
print(f"fcn (dense, every window incl. ocean): {t_dense:6.2f} s   max|diff| on land "
      f"{np.abs(dense[valid] - ref[valid]).max():.2e}")
ii, jj = np.nonzero(valid)
win = torch.as_tensor(img).unfold(1, 9, 1).unfold(2, 9, 1)
t = time.perf_counter()
patches = win[:, torch.as_tensor(ii), torch.as_tensor(jj)].permute(1, 0, 2, 3).contiguous()
t_cut = time.perf_counter() - t
def fwd():
    with torch.no_grad():
        return torch.cat([model(patches[s:s + 8192]) for s in range(0, len(patches), 8192)])
t_fwd, _ = best(fwd, 2)
print(f"patch-wise split: cutting {t_cut:.2f} s, forward only {t_fwd:.2f} s")
