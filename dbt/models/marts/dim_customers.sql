with orders as (
    select customer_id, count(*) as orders, sum(amount) as order_amount
    from {{ ref('stg_app_db__orders') }}
    group by customer_id
)
select
    c.customer_id,
    c.email,
    c.country,
    coalesce(o.orders, 0) as orders,
    coalesce(o.order_amount, 0) as order_amount
from {{ ref('stg_app_db__customers') }} c
left join orders o using (customer_id)
