"""Drive an inference server with the stock `tritonclient[grpc]` and print what it saw as JSON.

Run as its own process (`python -m tests.services.inference.tritonclient_probe ADDRESS INPUT.npy`):
tritonclient ships its own compiled copy of the `inference` protos, which cannot share a
descriptor pool with ScoreMesh's generated code, so the two never meet in one process.
"""

from __future__ import annotations

import json
import sys

import ml_dtypes
import numpy as np
import tritonclient.grpc as grpcclient


def main() -> None:
    address, features_path = sys.argv[1], sys.argv[2]
    x = np.load(features_path).astype(np.float32)
    client = grpcclient.InferenceServerClient(url=address)
    metadata = client.get_model_metadata("ctr_ensemble", as_json=True)
    report = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("ctr_ensemble"),
        "unknown_ready": client.is_model_ready("no_such_model"),
        "metadata": {"name": metadata["name"], "versions": metadata["versions"], "inputs": metadata["inputs"], "outputs": metadata["outputs"]},
        "server": client.get_server_metadata(as_json=True)["name"],
    }
    for datatype, array in (("FP32", x), ("FP16", x.astype(np.float16)), ("BF16", x.astype(ml_dtypes.bfloat16))):
        tensor = grpcclient.InferInput("features", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        outputs = [grpcclient.InferRequestedOutput(n) for n in ("score", "member_scores", "confidence")]
        result = client.infer("ctr_ensemble", [tensor], outputs=outputs, request_id=f"probe-{datatype}")
        report[datatype] = {
            "id": result.get_response().id,
            "model_version": result.get_response().model_version,
            "score": result.as_numpy("score").tolist(),
            "member_scores": result.as_numpy("member_scores").tolist(),
            "confidence": result.as_numpy("confidence").tolist(),
        }
    only_score = client.infer("ctr_ensemble", [grpcclient.InferInput("features", list(x.shape), "FP32").set_data_from_numpy(x)],
                              outputs=[grpcclient.InferRequestedOutput("score")])
    report["only_score_outputs"] = [o.name for o in only_score.get_response().outputs]
    stats = client.get_inference_statistics("ctr_ensemble", as_json=True)
    report["statistics"] = stats["model_stats"][0]["inference_stats"]["success"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
