from c2c.codegen import EVENTS_MODULE, render_models


def test_generated_models_are_up_to_date_with_the_schemas() -> None:
    assert EVENTS_MODULE.read_text() == render_models(), (
        "c2c/events.py is out of date with schemas/avro/: run `c2c schemas codegen`"
    )
