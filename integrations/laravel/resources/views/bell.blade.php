<script type="module" src="{{ $url }}/static/tidings-bell.js"></script>
<tidings-bell base-url="{{ $url }}" token="{{ $token }}" @if($tokenUrl) data-token-url="{{ $tokenUrl }}" @endif {{ $attributes }}></tidings-bell>
<script>(function(bell){bell.getToken=async function(){if(!bell.dataset.tokenUrl)return null;const r=await fetch(bell.dataset.tokenUrl,{headers:{Accept:"application/json"},credentials:"same-origin"});return r.ok?(await r.json()).token:null;};})(document.currentScript.previousElementSibling);</script>
