"""What the checks of a migrated target accept as the smoke message's rows (lab/delivery_rows.py)."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("delivery_rows", Path(__file__).resolve().parents[2] / "lab" / "delivery_rows.py")
delivery_rows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(delivery_rows)


def test_a_delivery_explains_new_rows_in_its_tables_and_partitions_only():
    explained = delivery_rows.count_explained
    assert explained("public.t_mailbox_record", 100, 101, messages=1)
    assert explained("public.t_container_changeset_17", "4", "6", messages=1)
    assert not explained("public.t_container_changeset_17", 4, 7, messages=1)
    assert explained("public.t_conversationreference_3", 0, 1, messages=1)
    assert explained("public.t_conversationreference", 3675, 3676, messages=1)  # the partitioned parent
    assert explained("public.t_container_changeset", "7395", "7396", messages=1)
    assert not explained("public.t_mailbox_record", 100, 99, messages=1)  # a row lost
    assert not explained("public.t_mailbox_record", 100, 100, messages=1)  # no difference is not a delivery
    assert not explained("public.t_directory_entry", 20, 21, messages=1)
    assert not explained("public.t_container_changeset_x", 0, 1, messages=1)


def test_a_counter_updated_in_place_is_explained_but_not_a_lost_row():
    explained = delivery_rows.content_explained
    assert explained("public.v_container_item_counter", missing=1, added=1, messages=1)
    assert not explained("public.v_container_item_counter", missing=2, added=2, messages=1)
    assert explained("public.t_message_body", missing=0, added=1, messages=1)
    assert not explained("public.t_message_body", missing=1, added=2, messages=1)
    assert not explained("public.t_server", missing=1, added=1, messages=1)
