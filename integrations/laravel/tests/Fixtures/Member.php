<?php

namespace Tidings\Laravel\Tests\Fixtures;

use Illuminate\Notifications\Notifiable;

/** A notifiable that names its tidings user itself. */
class Member
{
    use Notifiable;

    /** @var string */
    public $handle;

    public function __construct(string $handle)
    {
        $this->handle = $handle;
    }

    public function routeNotificationForTidings($notification): string
    {
        return 'member-' . $this->handle;
    }
}
