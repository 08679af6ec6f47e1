"""Write web/legends.json from unity_core.modalities.legend (the frontend's colour legends).

    python scripts/make_legends.py
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unity_core.constants import MODALITIES  # noqa: E402
from unity_core.modalities import legend  # noqa: E402

if __name__ == "__main__":
    data = {m: legend(m) for m in MODALITIES}
    (ROOT / "web" / "legends.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote web/legends.json ({len(data)} modalities)")
