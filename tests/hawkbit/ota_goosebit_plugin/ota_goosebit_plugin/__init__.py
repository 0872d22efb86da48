"""Test-only goosebit plugin for the ota-agent hawkBit tests.

goosebit's own upload parses SWU/RAUC headers and answers 422 for an
ota-agent bundle. This plugin adds, under /plugins/ota_bundle/:

* POST software?version=V&filename=F (raw body = the bundle): stores the file
  with goosebit's storage, creates the same Software + Hardware records
  goosebit's upload creates (sha1, size) and a rollout on feed "default";
* GET device/{id}: goosebit's own records of that device and its rollout
  (sw_version, last_state, progress, last_log, success/failure counts),
  so the tests read what goosebit believes without a UI login.

It does not change goosebit's DDI behaviour.
"""

import hashlib
import tempfile

from anyio import Path
from fastapi import APIRouter, HTTPException, Request

from goosebit.db.models import Device, Hardware, Rollout, Software, SoftwareImageFormat
from goosebit.schema.plugins import PluginSchema
from goosebit.storage import storage

router = APIRouter()


@router.post("/software")
async def upload(request: Request, version: str, filename: str, hw_model: str = "default",
                 hw_revision: str = "default") -> dict:
    body = await request.body()
    if not body:
        raise HTTPException(400, "empty body")
    sha1 = hashlib.sha1(body).hexdigest()
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(body)
        tmp = f.name
    uri = await storage.store_file(Path(tmp), Path(sha1).joinpath(filename))
    software = await Software.create(uri=uri, version=version, size=len(body), hash=sha1,
                                     image_format=SoftwareImageFormat.SWU)
    hw = (await Hardware.get_or_create(model=hw_model, revision=hw_revision))[0]
    await software.compatibility.add(hw)
    await software.save()
    rollout = await Rollout.create(software=software, feed="default", name=f"ota {version}")
    return {"software_id": software.id, "rollout_id": rollout.id, "sha1": sha1}


@router.get("/device/{dev_id}")
async def device(dev_id: str) -> dict:
    d = await Device.get_or_none(id=dev_id)
    if d is None:
        raise HTTPException(404)
    rollouts = [
        {"id": r.id, "success_count": r.success_count, "failure_count": r.failure_count}
        for r in await Rollout.all().order_by("id")
    ]
    return {
        "sw_version": d.sw_version,
        "last_state": d.last_state.name,
        "progress": d.progress,
        "last_log": d.last_log,
        "rollouts": rollouts,
    }


config = PluginSchema(name="ota_bundle", router=router)
