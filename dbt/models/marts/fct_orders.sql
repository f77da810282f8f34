-- Incremental: a later run merges only orders updated since the last one (dbt stages
-- them in a temporary table, which is why a writing role holds TEMPORARY).
{{ config(materialized='incremental', unique_key='order_id') }}

select
    o.order_id,
    o.customer_id,
    o.amount,
    o.status,
    s.is_paid,
    o.updated_at
from {{ ref('stg_app_db__orders') }} o
join {{ ref('order_statuses') }} s using (status)
{% if is_incremental() %}
where o.updated_at >= (select coalesce(max(updated_at), '1970-01-01') from {{ this }})
{% endif %}
