select
    id::int as customer_id,
    email,
    country,
    created_at::timestamptz as created_at
from {{ source('app_db', 'customers') }}
