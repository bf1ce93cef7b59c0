"""ScoreMesh's conventions on top of the Open Inference Protocol."""

from domain.inference_protocol import parse_stages_header, stages_header


def test_the_stages_header_round_trips_and_ignores_malformed_pairs():
    stages = (("1", "archived"), ("2", "production"), ("3", "staging"))
    assert stages_header(stages) == "1=archived,2=production,3=staging"
    assert parse_stages_header(stages_header(stages)) == stages
    assert parse_stages_header("") == () and parse_stages_header("2=production,junk,=x,4=") == (("2", "production"),)
