select
    c.country,
    count(*) as charges,
    sum(ch.amount) as revenue
from {{ ref('stg_stripe__charges') }} ch
join {{ ref('stg_app_db__customers') }} c using (customer_id)
group by c.country
