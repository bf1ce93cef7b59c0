"""ScoreMesh's conventions on top of the Open Inference Protocol, shared with its clients (the
router). No torch here: importing this must stay cheap."""

INPUT_NAME = "features"
OUTPUT_NAMES = ("score", "member_scores", "confidence")
# Response parameter: the ensemble's member names, in member_scores column order.
MEMBER_NAMES_PARAMETER = "member_names"
# Request and response parameter: "name/version" of the feature schema the features follow.
FEATURE_SCHEMA_PARAMETER = "feature_schema"
# ErrorInfo reason of a request whose features follow another schema than the model's.
SCHEMA_MISMATCH = "FEATURE_SCHEMA_MISMATCH"
