<?php

namespace Tidings\Laravel\Tests\Fixtures;

use Illuminate\Database\Eloquent\Model;

/** The original design's notification row, which the observer in docs/api.md publishes. */
class AppNotification extends Model
{
    protected $table = 'app_notifications';

    protected $guarded = [];

    public $timestamps = false;
}
