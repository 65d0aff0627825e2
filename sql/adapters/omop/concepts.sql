-- (not a kind: read by the other OMOP adapters as a table) CONCEPT by id, one row each.
select concept_id, any_value(concept_name) as concept_name, any_value(vocabulary_id) as vocabulary_id,
    any_value(concept_code) as concept_code
from src_concept
group by concept_id
