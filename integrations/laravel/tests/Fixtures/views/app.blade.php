{{-- The layout of docs/laravel.md: the bell in the header, for whoever is logged in. --}}
<header>
{{-- --8<-- [start:bell] --}}
<x-tidings-bell />
{{-- --8<-- [end:bell] --}}
</header>
