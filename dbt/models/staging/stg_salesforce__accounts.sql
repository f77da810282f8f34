select
    id::int as account_id,
    name as account_name,
    industry,
    updated_at::timestamptz as updated_at
from {{ source('salesforce', 'account') }}
