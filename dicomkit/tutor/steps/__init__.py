"""One module per lesson, mirroring ``lessons/NN-slug.md``: its actions and its tasks."""

from dicomkit.tutor.steps import (  # noqa: F401  (importing registers the names)
    lesson01_meet_the_lab,
    lesson02_place_an_order,
    lesson03_query_the_worklist,
    lesson04_acquire_an_image,
    lesson05_send_to_the_pacs,
    lesson06_find_it_in_the_pacs,
    lesson07_dicomweb_basics,
    lesson08_troubleshooting,
    lesson09_orders_arrive_as_hl7,
    lesson10_the_modality_reports_mpps,
    lesson11_retrieve_a_study,
    lesson12_storage_commitment,
    lesson13_deidentify_for_research,
    lesson14_the_scheduled_workflow,
)
