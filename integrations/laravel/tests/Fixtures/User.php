<?php

namespace Tidings\Laravel\Tests\Fixtures;

use Illuminate\Auth\Authenticatable;
use Illuminate\Contracts\Auth\Authenticatable as AuthenticatableContract;
use Illuminate\Database\Eloquent\Model;
use Illuminate\Notifications\Notifiable;

class User extends Model implements AuthenticatableContract
{
    use Authenticatable;
    use Notifiable;

    protected $guarded = [];

    public $timestamps = false;

    // The tests name their users ('laravel-invoice'); an app's integer ids work the same.
    public $incrementing = false;

    protected $keyType = 'string';
}
