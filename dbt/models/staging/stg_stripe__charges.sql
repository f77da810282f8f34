select
    id as charge_id,
    customer_id::int as customer_id,
    amount::numeric / 100 as amount,
    currency,
    created_at::timestamptz as created_at
from {{ source('stripe', 'charges') }}
