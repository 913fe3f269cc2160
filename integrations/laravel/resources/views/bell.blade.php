<script type="module" src="{{ $url }}/static/tidings-bell.js" @if($nonce) nonce="{{ $nonce }}" @endif></script>
<tidings-bell base-url="{{ $url }}" @if($token) token="{{ $token }}" @endif @if($tokenUrl) token-url="{{ $tokenUrl }}" @endif @if(! $push) no-push @endif {{ $attributes }}></tidings-bell>
