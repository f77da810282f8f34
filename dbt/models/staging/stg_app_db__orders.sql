select
    id::int as order_id,
    customer_id::int as customer_id,
    amount::numeric(12, 2) as amount,
    status,
    updated_at::timestamptz as updated_at
from {{ source('app_db', 'orders') }}
