{{-- The Laravel + Vue 2 layout of docs/laravel.md: Vue compiles #app from this DOM. --}}
{{-- --8<-- [start:vue2] --}}
<div id="app">
    {{-- the custom element: its token URL, no inline script --}}
    <x-tidings-bell />
    {{-- or the drop-in Vue 2 component, where the original <notification-bell> was --}}
    @auth
        <notification-bell base-url="{{ Tidings::url() }}"
                           token-url="{{ route('tidings.token', [], false) }}"
                           @unless(config('tidings.push')) no-push @endunless></notification-bell>
    @endauth
</div>
{{-- --8<-- [end:vue2] --}}
