"""Why do heat maps record nothing under CUDA graphs in one test but not in another? (device diagnostic)"""
import json, sys, tempfile, pathlib, traceback
sys.path.insert(0, ".")
from tests.sd_factory import save_pipeline
from sd_explorer.core.models import load_model
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import sweep
from sd_explorer.core.attention import recording

out = pathlib.Path(sys.argv[1]); out.parent.mkdir(parents=True, exist_ok=True)
d = pathlib.Path(tempfile.mkdtemp()); save_pipeline(d / "sd1")
rows = []
def trial(name, eager_first, **kw):
    try:
        if eager_first:
            e = load_model(str(d / "sd1"), device="cuda", dtype="fp16", fast=False)
            s = SampleSettings("An oil painting of a collie in a top hat", **kw)
            with recording(e, s, 3) as rec:
                sweep(e, s, [1.0, 4.0, 7.5])
            ecalls = rec.accumulator.calls
        else:
            ecalls = None
        m = load_model(str(d / "sd1"), device="cuda", dtype="fp16", fast=True)
        s = SampleSettings("An oil painting of a collie in a top hat", **kw)
        msgs = []
        m.unet_forward.status = msgs.append
        with recording(m, s, 3) as rec:
            procs = sorted({type(p).__name__ for p in m.unet.attn_processors.values()})
            sweep(m, s, [1.0, 4.0, 7.5])
        cache = m.attention_state.graphs[3]
        rows.append(dict(name=name, eager_calls=ecalls, calls=rec.accumulator.calls, procs=procs,
                         captures=len(cache.captures), replays=cache.replays, eager=list(cache.eager.values()),
                         same_unet=(e.unet is m.unet) if eager_first else None, msgs=msgs[-6:]))
    except Exception:
        rows.append(dict(name=name, error=traceback.format_exc()[-1500:]))
    out.write_text(json.dumps(rows, indent=1))
trial("default", False, steps=3, seed=1)
trial("euler", False, steps=4, seed=7, scheduler="Euler")
trial("eager-first default", True, steps=3, seed=1)
trial("eager-first euler", True, steps=4, seed=7, scheduler="Euler")
print(out.read_text())
